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
