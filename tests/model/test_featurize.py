"""SMILES → GraphMVP graph features, checked against features written out by hand.

Run: ``.venv/bin/python -m pytest -q tests/model/test_featurize.py``.
Atom rows are (atomic number − 1, chirality index); edge rows (bond type, bond direction), every
bond twice (i→j then j→i) in RDKit bond order.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch_geometric.data import Batch, Data

from biomedgpt.core.errors import InputError, InvalidSmilesError
from biomedgpt.model.molecule import FeaturizationWarning, featurize_smiles

C, N, O, F, NA, CL, CU, PT = 5, 6, 7, 8, 10, 16, 28, 77  # atomic number − 1
SINGLE, DOUBLE, AROMATIC, OTHER = 0, 1, 3, 4
NONE, UP, DOWN = 0, 1, 2

CASES = {
    # tetrahedral stereo: atom 1 is CCW for @, CW for @@
    "C[C@H](N)O": (
        [[C, 0], [C, 2], [N, 0], [O, 0]],
        [[0, 1, 1, 2, 1, 3], [1, 0, 2, 1, 3, 1]],
        [[SINGLE, NONE]] * 6,
    ),
    "C[C@@H](N)O": (
        [[C, 0], [C, 1], [N, 0], [O, 0]],
        [[0, 1, 1, 2, 1, 3], [1, 0, 2, 1, 3, 1]],
        [[SINGLE, NONE]] * 6,
    ),
    # cis/trans: the single bonds carry ENDUPRIGHT (/) or ENDDOWNRIGHT (\)
    "F/C=C/F": (
        [[F, 0], [C, 0], [C, 0], [F, 0]],
        [[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]],
        [[SINGLE, UP], [SINGLE, UP], [DOUBLE, NONE], [DOUBLE, NONE], [SINGLE, UP], [SINGLE, UP]],
    ),
    "F/C=C\\F": (
        [[F, 0], [C, 0], [C, 0], [F, 0]],
        [[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]],
        [[SINGLE, UP], [SINGLE, UP], [DOUBLE, NONE], [DOUBLE, NONE], [SINGLE, DOWN], [SINGLE, DOWN]],
    ),
    # aromatic
    "c1ccccc1": (
        [[C, 0]] * 6,
        [[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 0, 5]],
        [[AROMATIC, NONE]] * 12,
    ),
    "c1ccncc1": (
        [[C, 0], [C, 0], [C, 0], [N, 0], [C, 0], [C, 0]],
        [[0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0], [1, 0, 2, 1, 3, 2, 4, 3, 5, 4, 0, 5]],
        [[AROMATIC, NONE]] * 12,
    ),
    # charged: the charge is not a GraphMVP feature; implicit H stay implicit (no AddHs)
    "C[NH3+]": ([[C, 0], [N, 0]], [[0, 1], [1, 0]], [[SINGLE, NONE]] * 2),
    "[O-]C=O": (
        [[O, 0], [C, 0], [O, 0]],
        [[0, 1, 1, 2], [1, 0, 2, 1]],
        [[SINGLE, NONE], [SINGLE, NONE], [DOUBLE, NONE], [DOUBLE, NONE]],
    ),
    # dummy atom: atomic number 0 → misc row 118
    "*C": ([[118, 0], [C, 0]], [[0, 1], [1, 0]], [[SINGLE, NONE]] * 2),
}


def _check(data: Data, x, edge_index, edge_attr) -> None:
    assert data.x.dtype == data.edge_index.dtype == data.edge_attr.dtype == torch.long
    assert data.x.tolist() == x
    assert data.edge_index.tolist() == edge_index
    assert data.edge_attr.tolist() == edge_attr


@pytest.mark.parametrize("smiles", list(CASES))
def test_features_equal_hand_computed(smiles):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeaturizationWarning)  # none of these needs a fallback
        data = featurize_smiles(smiles)
    assert isinstance(data, Data)
    assert data.smiles == smiles
    _check(data, *CASES[smiles])


def test_salt_with_dot_has_two_ions_and_no_edges():
    data = featurize_smiles("[Na+].[Cl-]")
    assert data.x.tolist() == [[NA, 0], [CL, 0]]
    assert tuple(data.edge_index.shape) == (2, 0)
    assert tuple(data.edge_attr.shape) == (0, 2)
    assert data.edge_index.dtype == data.edge_attr.dtype == torch.long


def test_single_atom_has_empty_edges():
    data = featurize_smiles("C")
    assert data.x.tolist() == [[C, 0]]
    assert tuple(data.edge_index.shape) == (2, 0)
    assert tuple(data.edge_attr.shape) == (0, 2)


def test_dative_bond_maps_to_other_with_warning():
    with pytest.warns(FeaturizationWarning, match=r"DATIVE"):
        data = featurize_smiles("[NH3]->[Cu+2]")
    _check(data, [[N, 0], [CU, 0]], [[0, 1], [1, 0]], [[OTHER, NONE], [OTHER, NONE]])


def test_unrepresentable_chirality_maps_to_zero_with_warning():
    with pytest.warns(FeaturizationWarning, match=r"CHI_SQUAREPLANAR") as record:
        data = featurize_smiles("F[Pt@SP1](Cl)(F)Cl")
    assert "F[Pt@SP1](Cl)(F)Cl" in str(record[0].message)
    assert data.x.tolist() == [[F, 0], [PT, 0], [CL, 0], [F, 0], [CL, 0]]


@pytest.mark.parametrize(
    "smiles, tag, metal",
    [("S[As@TB1](F)(Cl)(Br)N", "CHI_TRIGONALBIPYRAMIDAL", 32), ("C[Co@OH1](F)(Cl)(Br)(I)S", "CHI_OCTAHEDRAL", 26)],
)
def test_other_non_tetrahedral_tags_map_to_zero(smiles, tag, metal):
    with pytest.warns(FeaturizationWarning, match=tag):
        data = featurize_smiles(smiles)
    assert data.x[1].tolist() == [metal, 0]
    assert (data.x[:, 1] == 0).all()


def test_list_gives_batch_with_batch_vector_and_offsets():
    batch = featurize_smiles(["CO", "C", "[Na+].[Cl-]", "C=O"])
    assert isinstance(batch, Batch)
    assert batch.num_graphs == 4
    assert batch.batch.tolist() == [0, 0, 1, 2, 2, 3, 3]
    assert batch.x.tolist() == [[C, 0], [O, 0], [C, 0], [NA, 0], [CL, 0], [C, 0], [O, 0]]
    assert batch.edge_index.tolist() == [[0, 1, 5, 6], [1, 0, 6, 5]]
    assert batch.edge_attr.tolist() == [[SINGLE, NONE]] * 2 + [[DOUBLE, NONE]] * 2
    assert batch.smiles == ["CO", "C", "[Na+].[Cl-]", "C=O"]
    single = batch.get_example(3)
    assert single.x.tolist() == featurize_smiles("C=O").x.tolist()


@pytest.mark.parametrize("bad", ["C1CC", "C(C)(C)(C)(C)C", "not a smiles"])
def test_invalid_smiles_names_it_and_silences_rdkit(bad, capfd):
    with pytest.raises(InvalidSmilesError) as info:
        featurize_smiles(bad)
    assert repr(bad) in str(info.value)
    captured = capfd.readouterr()
    assert "SMILES Parse Error" not in captured.err and "Explicit valence" not in captured.err


def test_valence_error_says_why():
    with pytest.raises(InvalidSmilesError, match=r"valence"):
        featurize_smiles("C(C)(C)(C)(C)C")


def test_invalid_smiles_in_list_names_position():
    with pytest.raises(InvalidSmilesError, match=r"'C1CC' \(item 3 of 3\)"):
        featurize_smiles(["CCO", "c1ccccc1", "C1CC"])


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_smiles_is_an_error(bad):
    with pytest.raises(InvalidSmilesError, match="empty"):
        featurize_smiles(bad)


def test_empty_list_and_wrong_type_are_errors():
    with pytest.raises(InputError, match="empty list"):
        featurize_smiles([])
    with pytest.raises(InvalidSmilesError, match="must be a string"):
        featurize_smiles(["CCO", None])  # type: ignore[list-item]


# ------------------------------------------------------- identical to the former implementation (issue 16)


def _former_featurize(smiles):
    """The featurizer as it was before the one-pass rewrite (per-property list comprehensions over
    GetAtomWithIdx/GetBondWithIdx, one Data per molecule, Batch.from_data_list): the trained
    encoders were trained on its output, so the new one must give exactly the same."""
    import numpy as np
    from rdkit import Chem
    from rdkit.rdBase import BlockLogs

    from biomedgpt.core.chem import parse_smiles
    from biomedgpt.model.molecule import MISC_ATOM_INDEX, SELF_LOOP_BOND_TYPE

    ct, bt, bd = Chem.rdchem.ChiralType, Chem.rdchem.BondType, Chem.rdchem.BondDir
    chir = {ct.CHI_UNSPECIFIED: 0, ct.CHI_TETRAHEDRAL_CW: 1, ct.CHI_TETRAHEDRAL_CCW: 2}
    btype = {bt.SINGLE: 0, bt.DOUBLE: 1, bt.TRIPLE: 2, bt.AROMATIC: 3}
    bdir = {bd.NONE: 0, bd.ENDUPRIGHT: 1, bd.ENDDOWNRIGHT: 2}

    def one(mol, text, where):
        atoms = [mol.GetAtomWithIdx(i) for i in range(mol.GetNumAtoms())]
        bonds = [mol.GetBondWithIdx(i) for i in range(mol.GetNumBonds())]
        z = np.array([a.GetAtomicNum() for a in atoms], dtype=np.int64)
        chirality = np.array([chir.get(a.GetChiralTag(), -1) for a in atoms], dtype=np.int64)
        begin = np.array([b.GetBeginAtomIdx() for b in bonds], dtype=np.int64)
        end = np.array([b.GetEndAtomIdx() for b in bonds], dtype=np.int64)
        bond_type = np.array([btype.get(b.GetBondType(), -1) for b in bonds], dtype=np.int64)
        bond_dir = np.array([bdir.get(b.GetBondDir(), 0) for b in bonds], dtype=np.int64)
        notes = [f"atom {i} ({atoms[i].GetSymbol()}) chirality {atoms[i].GetChiralTag().name} → 0"
                 for i in np.flatnonzero(chirality < 0)] + \
                [f"bond {begin[k]}-{end[k]} type {bonds[k].GetBondType().name} → {SELF_LOOP_BOND_TYPE} (other)"
                 for k in np.flatnonzero(bond_type < 0)]
        if notes:
            chirality[chirality < 0] = 0
            bond_type[bond_type < 0] = SELF_LOOP_BOND_TYPE
            warnings.warn(f"SMILES {text!r}{where}: mapped what the GraphMVP tables cannot represent: "
                          + "; ".join(notes), FeaturizationWarning)
        x = np.empty((len(atoms), 2), dtype=np.int64)
        x[:, 0] = np.where((z >= 1) & (z <= 118), z - 1, MISC_ATOM_INDEX)
        x[:, 1] = chirality
        edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
        edge_index[0, 0::2] = edge_index[1, 1::2] = begin
        edge_index[1, 0::2] = edge_index[0, 1::2] = end
        edge_attr = np.empty((2 * len(bonds), 2), dtype=np.int64)
        edge_attr[0::2, 0] = edge_attr[1::2, 0] = bond_type
        edge_attr[0::2, 1] = edge_attr[1::2, 1] = bond_dir
        return Data(x=torch.from_numpy(x), edge_index=torch.from_numpy(edge_index),
                    edge_attr=torch.from_numpy(edge_attr), smiles=text)

    with BlockLogs():
        if isinstance(smiles, str):
            return one(parse_smiles(smiles), smiles, "")
        return Batch.from_data_list([
            one(parse_smiles(s, f" (item {i + 1} of {len(smiles)})" if len(smiles) > 1 else ""), s,
                f" (item {i + 1} of {len(smiles)})" if len(smiles) > 1 else "")
            for i, s in enumerate(smiles)])


#: Structures that exercise every branch of the fast path: stereo, cis/trans, metals (sanitization
#: may make a bond DATIVE), written dative bonds, quadruple bonds, non-tetrahedral tags, dummies, isotopes.
EDGE_CASES = [
    "C[C@H](N)O", "F/C=C\\F", "F/C=C/C=C\\Cl", "[NH3]->[Cu+2]", "[Cu+2]<-[NH3]", "F[Pt@SP1](Cl)(F)Cl",
    "S[As@TB1](F)(Cl)(Br)N", "C[Co@OH1](F)(Cl)(Br)(I)S", "[C-]#[O+]", "[Fe]1234[C]5[C]1[C]2[C]3[C]45",
    "Cl[Pt](Cl)([NH3])[NH3]", "CN(C)(C)[Co]", "N1(C)(C)C[Pt]1", "[C]$[C]", "*C", "[2H]C([2H])([2H])O", "[Na+].[Cl-]", "C",
    "O=C1O[C@H]([C@@H](O)CO)C(O)=C1O", "C[Si](C)(C)C", "[Se]=C=[Se]", "B(O)(O)c1ccccc1", "[U+6]", "[Hg](Cl)Cl",
    "c1cc[nH]c1", "C[N+](C)(C)C.[I-]", "[O-][N+](=O)c1ccccc1", "CC(=O)[O-].[Mg+2].CC(=O)[O-]",
]


def _chebi_smiles() -> list[str]:
    from biomedgpt.core.chem import try_parse_smiles
    from biomedgpt.model.retrieval import reference_molecules

    # The shipped ChEBI-20 reference (every row: real molecules of the data the encoders were trained on).
    return [r.smiles for r in reference_molecules() if try_parse_smiles(r.smiles) is not None]


def _same(new, old) -> None:
    for name in ("x", "edge_index", "edge_attr"):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), name
    assert new.smiles == old.smiles


def test_identical_to_the_former_featurizer_on_chebi20_batches_and_singles():
    smiles = _chebi_smiles() + EDGE_CASES
    assert len(smiles) > 3000
    with warnings.catch_warnings(record=True) as new_warnings:
        warnings.simplefilter("always")
        new = [featurize_smiles(smiles[i:i + 256]) for i in range(0, len(smiles), 256)]
    with warnings.catch_warnings(record=True) as old_warnings:
        warnings.simplefilter("always")
        old = [_former_featurize(smiles[i:i + 256]) for i in range(0, len(smiles), 256)]
    assert [str(w.message) for w in new_warnings] == [str(w.message) for w in old_warnings]
    assert len(new_warnings) >= 5  # the edge cases that need a fallback did warn
    for a, b in zip(new, old):
        _same(a, b)
        assert type(a) is type(b) and a.num_graphs == b.num_graphs
        assert torch.equal(a.batch, b.batch) and torch.equal(a.ptr, b.ptr)
        assert {k: v.tolist() if v is not None else None for k, v in a._inc_dict.items()} == \
            {k: v.tolist() if v is not None else None for k, v in b._inc_dict.items()}
        assert {k: v.tolist() for k, v in a._slice_dict.items()} == {k: v.tolist() for k, v in b._slice_dict.items()}
    for a, b in zip(new[-1].to_data_list(), old[-1].to_data_list()):
        _same(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in smiles[::20] + EDGE_CASES:
            _same(featurize_smiles(text), _former_featurize(text))
        _same(featurize_smiles([EDGE_CASES[0]]), _former_featurize([EDGE_CASES[0]]))  # a list of one: a Batch


def test_warning_points_at_the_caller():
    with pytest.warns(FeaturizationWarning) as record:
        featurize_smiles("[NH3]->[Cu+2]")
    assert record[0].filename == __file__


@pytest.mark.parametrize("workers", [1, 2])
def test_featurize_batches_equals_featurize_smiles_of_each_slice(workers):
    from biomedgpt.model.molecule import featurize_batches

    smiles = _chebi_smiles()[:300] + ["[NH3]->[Cu+2]"] + _chebi_smiles()[300:350]
    with pytest.warns(FeaturizationWarning, match="DATIVE"):
        batches = list(featurize_batches(smiles, batch_size=64, workers=workers))
    assert [b.num_graphs for b in batches] == [64] * 5 + [31]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start, batch in zip(range(0, len(smiles), 64), batches):
            expected = featurize_smiles(smiles[start:start + 64])
            _same(batch, expected)
            assert torch.equal(batch.batch, expected.batch) and torch.equal(batch.ptr, expected.ptr)
    with pytest.raises(InvalidSmilesError, match=r"'C1CC' \(item 70 of 80\)"):
        list(featurize_batches(smiles[:69] + ["C1CC"] + smiles[:10], batch_size=16, workers=workers))


# ------------------------------------------------- the token fast path (issue 16): identical on any spelling

#: Spellings that decide which path a molecule takes: hydrogens the parse removes (atoms ≠ tokens),
#: atom maps, isotopes, %nn ring bonds, a ring bond across a dot, CXSMILES after a space, the ``~``
#: bond, a quadruple bond, dummies, aromatic selenium, explicit-H brackets, stereo at a ring bond.
TOKEN_CASES = [
    "[H]C([H])([H])[H]", "[H]OC", "[H][H]", "[2H]C([2H])([2H])[2H]", "[CH3:1][CH2:2][OH:3]", "[13CH3]C(=O)O",
    "C%10CC%10", "C%(123)CCC%(123)", "C1.C1", "C1CC2CCC1C2", "C2CC1CCC2C1", "C=1CC1", "C1CC=1", "CC |$;foo$|",
    "C~C", "C$C", "*c1ccccc1", "[*]C", "c1cc[se]c1", "[CH3][C@H]([NH2])[C](=[O])[OH]", "C/C=C/1.C1",
    "F/C=C/1.Br1", "C1CC/C=C/CC1", "C/1=C/CCCCCC1", "O[C@H]1CC[C@@H](O)CC1", "N[C@@H](C)C(=O)O", "C[C@@]12CC[C@H]1C2",
    "OC1=CC=CC=C1", "C1=CC=CC=C1C=O", "[O-][n+]1ccccc1", "C[S@@](=O)c1ccccc1", "[Si]", "B1OB(O)OB(O)O1",
]


def _arrays_equal(new, old) -> None:
    for name in ("x", "edge_index", "edge_attr"):
        a, b = getattr(new, name), getattr(old, name)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), name


def test_token_cases_equal_the_former_featurizer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for text in TOKEN_CASES:
            _arrays_equal(featurize_smiles(text), _former_featurize(text))
        _arrays_equal(featurize_smiles(TOKEN_CASES), _former_featurize(TOKEN_CASES))


def test_random_kekule_and_explicit_h_spellings_equal_the_former_featurizer():
    """Atom and bond order follow the spelling: random SMILES (other atom orders, ring-bond numbers,
    branches, stereo marks on other bonds), Kekulé and all-H-bracket forms of real molecules."""
    from rdkit import Chem

    spellings = []
    for i, text in enumerate(_chebi_smiles()[::6]):
        mol = Chem.MolFromSmiles(text)
        spellings += Chem.MolToRandomSmilesVect(mol, 2, randomSeed=i)
        spellings.append(Chem.MolToSmiles(mol, kekuleSmiles=True, canonical=i % 2 == 0))
        if i % 4 == 0:
            spellings.append(Chem.MolToSmiles(mol, allHsExplicit=True, allBondsExplicit=i % 8 == 0))
    assert len(spellings) > 1500
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for start in range(0, len(spellings), 200):
            chunk = spellings[start:start + 200]
            _arrays_equal(featurize_smiles(chunk), _former_featurize(chunk))


def test_token_codes_resolve_each_token_by_rdkit():
    from biomedgpt.model.featurize import _CHIRAL, _CODES, _SLOW, MISC_ATOM_INDEX

    assert _CODES["C"] == _CODES["c"] == _CODES["[13CH3]"] == _CODES["[CH2:7]"] == C
    assert _CODES["Cl"] == CL and _CODES["[nH]"] == N and _CODES["[O-]"] == O
    assert _CODES["[C@@H]"] == _CODES["[C@H]"] == _CHIRAL + C
    for slow in ("[Na+]", "[Cu+2]", "*", "[*]", "<", "~", " ", "|", "[Xx]", "e", "Cr", "K"):
        assert _CODES[slow] == _SLOW, slow
    assert MISC_ATOM_INDEX < _CHIRAL < _SLOW


def test_featurize_batches_yields_the_batches_before_a_failure(workers=2):
    from biomedgpt.model.molecule import featurize_batches

    smiles = _chebi_smiles()[:69] + ["C1CC"] + _chebi_smiles()[:10]
    got = []
    with pytest.raises(InvalidSmilesError, match=r"'C1CC' \(item 70 of 80\)"):
        for batch in featurize_batches(smiles, batch_size=16, workers=workers):
            got.append(batch.num_graphs)
    assert got == [16, 16, 16, 16]
