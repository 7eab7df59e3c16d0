"""Reference indexes: leave-self-out, known nearest neighbours, save/load, and no test-split leak."""

from __future__ import annotations

import pytest

from biomedgpt.core.chem import parse_smiles
from biomedgpt.core.datasets import read_chebi20, split_accessions
from biomedgpt.model import retrieval
from biomedgpt.core.errors import InputError, InvalidSequenceError, InvalidSmilesError
from biomedgpt.model.retrieval import (
    Hit,
    MoleculeIndex,
    ProteinIndex,
    default_molecule_index,
    default_protein_index,
    format_context,
    reference_molecules,
    reference_proteins,
)

SHARED = "/work/shared/datasets"

MOLECULES = [
    ("1", "CCO", "ethanol, a primary alcohol"),
    ("2", "CCCO", "propan-1-ol, a primary alcohol"),
    ("3", "CCCCO", "butan-1-ol"),
    ("4", "c1ccccc1", "benzene, an aromatic hydrocarbon"),
    ("5", "Cc1ccccc1", "toluene"),
    ("6", "CC(=O)Oc1ccccc1C(=O)O", "aspirin"),
    ("7", "OC(=O)c1ccccc1O", "salicylic acid"),
]


@pytest.fixture(scope="module")
def molecules() -> MoleculeIndex:
    return MoleculeIndex.build(MOLECULES)


def test_known_nearest_neighbours(molecules):
    hits = molecules.search("CC(=O)Oc1ccccc1C(=O)O", k=2, leave_self_out=False)
    assert [h.id for h in hits] == ["6", "7"]  # aspirin itself, then salicylic acid
    assert hits[0].similarity == pytest.approx(1.0)
    assert 0 < hits[1].similarity < 1
    assert hits[0].description == "aspirin" and hits[0].smiles == MOLECULES[5][1]
    # toluene's nearest other molecule is benzene, not an alcohol
    assert molecules.search("Cc1ccccc1", k=1)[0].id == "4"


def test_leave_self_out_by_inchikey_not_spelling(molecules):
    # A different SMILES spelling of aspirin has the same InChIKey and must not come back.
    other_spelling = "OC(=O)c1ccccc1OC(C)=O"
    hits = molecules.search(other_spelling, k=3)
    assert "6" not in [h.id for h in hits]
    assert hits[0].id == "7"
    # Without the rule, the same molecule is the top hit.
    assert molecules.search(other_spelling, k=1, leave_self_out=False)[0].id == "6"


def test_exclude_ids_and_k(molecules):
    hits = molecules.search("CCCO", k=10, leave_self_out=False, exclude_ids=["2", "1"])
    ids = [h.id for h in hits]
    assert "1" not in ids and "2" not in ids
    assert len(ids) == len(MOLECULES) - 2
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


def test_invalid_smiles_names_input(molecules):
    with pytest.raises(InvalidSmilesError, match="C1CC"):
        molecules.search("C1CC")
    with pytest.raises(InputError, match="k must be"):
        molecules.search("CCO", k=0)


def test_build_skips_bad_reference_rows():
    index = MoleculeIndex.build([("a", "CCO", "x"), ("b", "not a smiles", "y")])
    assert len(index) == 1 and index.skipped == ["b"]
    with pytest.raises(InvalidSmilesError, match="reference molecule b"):
        MoleculeIndex.build([("b", "not a smiles", "y")], strict=True)


def test_molecule_save_load_roundtrip(molecules, tmp_path):
    path = molecules.save(tmp_path / "m.npz", source_digest="abc")
    loaded = MoleculeIndex.load(path)
    assert loaded.source_digest == "abc"
    assert loaded.records == molecules.records and loaded.inchikeys == molecules.inchikeys
    query = "OC(=O)c1ccccc1"
    assert loaded.search(query, k=4) == molecules.search(query, k=4)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temporary file


def test_load_rejects_wrong_or_corrupt_file(molecules, tmp_path):
    path = molecules.save(tmp_path / "m.npz")
    with pytest.raises(InputError, match="not a version-1 protein index"):
        ProteinIndex.load(path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable"):
        MoleculeIndex.load(bad)


PROTEINS = [
    ("P1", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ", "a kinase"),
    ("P2", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAR", "a kinase variant"),
    ("P3", "GSHMLEDPVAGQRLLEQLGHDVEVRRLSPVEVSGGAWNNLLYRLAHGDGGEAIVKLYTLPEG", "a transferase"),
    ("P4", "MSTNPKPQRKTKRNTNRRPQDVKFPGGGQIVGGVYLLPRRGPRLGVRATRKTSERSQPRG", "a capsid protein"),
]


@pytest.fixture(scope="module")
def proteins() -> ProteinIndex:
    return ProteinIndex.build(PROTEINS)


def test_protein_nearest_and_leave_self_out(proteins):
    query = PROTEINS[0][1]
    hits = proteins.search(query, k=2, leave_self_out=False)
    assert hits[0].id == "P1" and hits[0].similarity == pytest.approx(1.0)
    assert hits[1].id == "P2"
    # identical sequence is excluded by default, whatever accession it carries
    assert proteins.search(query, k=1)[0].id == "P2"
    # the query's own accession is excluded through exclude_ids even for a changed sequence
    mutated = query[:-3] + "AAA"
    assert proteins.search(mutated, k=1, exclude_ids=["P1"])[0].id == "P2"
    assert proteins.search(query.lower(), k=1)[0].id == "P2"  # case and whitespace do not matter


def test_protein_invalid_sequence(proteins):
    with pytest.raises(InvalidSequenceError, match="'1'"):
        proteins.search("MKT1AY")
    with pytest.raises(InvalidSequenceError, match="empty"):
        proteins.search("   ")


def test_protein_save_load(proteins, tmp_path):
    loaded = ProteinIndex.load(proteins.save(tmp_path / "p.npz"))
    assert loaded.search(PROTEINS[2][1], k=3) == proteins.search(PROTEINS[2][1], k=3)


def test_format_context_truncates_and_labels():
    hits = [Hit(id="2244", description="word " * 100, similarity=0.8123, smiles="C"),
            Hit(id="702", description="ethanol", similarity=0.5, smiles="CCO")]
    block = format_context(hits, "molecule", max_chars=50)
    assert block.splitlines()[0] == "Similar known molecules and their descriptions:"
    assert "1. CID 2244 (Tanimoto 0.81):" in block and block.splitlines()[2] == "2. CID 702 (Tanimoto 0.50): ethanol"
    assert block.splitlines()[1].endswith("…") and len(block.splitlines()[1]) < 100
    protein_hits = [Hit(id="P69905", description="Hemoglobin.", similarity=0.5, name="HBA", kind="protein"),
                    Hit(id="P68871", description="Hemoglobin beta.", similarity=0.4, name="HBB", kind="protein")]
    prot = format_context(protein_hits, "protein")
    assert "1. P69905 HBA (3-mer cosine 0.50): Hemoglobin." in prot
    assert format_context([], "protein") == ""
    with pytest.raises(InputError):
        format_context(hits, "rna")


def test_format_context_describes_a_single_neighbour_in_full_without_list_layout():
    long = "The molecule is a benzoic acid " + "word " * 100
    block = format_context([Hit(id="2244", description=long, similarity=0.8123, smiles="C"),
                            Hit(id="3", description="other", similarity=0.5, smiles="C")], "molecule", max_hits=1)
    heading, body = block.split("\n")
    assert heading == "The most similar known molecule (Tanimoto 0.81) is described as:"
    assert body == " ".join(long.split())  # in full: no 200-character cut, no "1. CID" label to copy
    short = format_context([Hit(id="1", description="x " * 1000, similarity=0.5, smiles="C")], "molecule",
                           nearest_max_chars=100)
    assert short.endswith("…") and len(short.splitlines()[1]) <= 101
    prot = format_context([Hit(id="P69905", description="Hemoglobin.", similarity=0.5, kind="protein")], "protein")
    assert prot == "The most similar known protein (3-mer cosine 0.50) is described as:\nHemoglobin."


def test_shipped_molecule_reference_holds_every_chebi20_row():
    """Every ChEBI-20 row, validation then test (issue 15: users get every molecule we know; an evaluation
    holds the rows it scores out by itself, tests/training/test_eval_drivers.py)."""
    reference = reference_molecules()
    expected = [r.cid for name in ("validation", "test") for r in read_chebi20(f"{SHARED}/chebi20/{name}.txt", strict=True)]
    assert len(reference) == len(expected) == 6101
    assert [r.id for r in reference] == expected
    index = default_molecule_index()
    assert len(index) == len(reference) and not index.skipped
    assert [r.id for r in index.records] == expected
    # backslashes are un-escaped
    assert not any("\\\\" in r.smiles for r in reference)


def test_shipped_protein_index_holds_only_the_train_split():
    everything = reference_proteins()
    train, test = split_accessions([r.accession for r in everything], test_fraction=0.2, seed=0)
    index = default_protein_index()
    shipped = {r.accession for r in index.records}
    assert shipped <= set(train) and not shipped & set(test)
    assert shipped == {r.accession for r in reference_proteins("train")}
    assert len(shipped) >= 0.79 * len(everything) - 10
    assert {r.accession for r in reference_proteins("test")} == set(test)
    test_sequences = {r.sequence for r in reference_proteins("test")}
    assert not test_sequences & {r.sequence for r in index.records}


def test_shipped_indexes_are_current_and_usable():
    molecules = default_molecule_index()
    assert molecules.source_digest == retrieval.file_digest(retrieval.MOLECULE_RECORDS)
    hits = molecules.search("CC(=O)Oc1ccccc1C(=O)O", k=3)
    assert len(hits) == 3 and all(h.description.startswith("The molecule is") for h in hits)
    proteins = default_protein_index()
    assert proteins.source_digest == retrieval.file_digest(retrieval.PROTEIN_RECORDS)
    probe = proteins.records[0]
    hit = proteins.search(probe.sequence, k=1, leave_self_out=False)[0]
    assert hit.id == probe.accession and hit.name and hit.description


def test_build_references_script_writes_indexes_the_library_loads(tmp_path):
    """``scripts/build_references.py`` (the maintainer's build) keeps every row of the ChEBI-20 files given
    (a CID given twice keeps its first row) and holds out the protein test split; ``MoleculeIndex.load`` /
    ``ProteinIndex.load`` read what it wrote."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "build_references.py"
    spec = importlib.util.spec_from_file_location("build_references", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    chebi = tmp_path / "validation.txt"
    chebi.write_text("CID\tSMILES\tdescription\n" + "".join(f"{i}\t{s}\t{d}\n" for i, s, d in MOLECULES))
    test = tmp_path / "test.txt"
    test.write_text("CID\tSMILES\tdescription\n99\tOCC\tethanol again\n3\tC\tCID 3 again")  # no final newline
    pair = tmp_path / "pair.csv"
    pair.write_text(",pid,seq,names\n" + "".join(
        f"{i},P{i:03d},['{'MKV' * (i + 2)}A'],['Recommended name: Protein {i}']\n" for i in range(10)))
    out = tmp_path / "out"
    out.mkdir()
    summary = build.main(["--chebi", str(chebi), str(test), "--swissprot", str(pair), "--out", str(out)])
    assert summary["molecules"] == {"rows": 8, "sources": {"validation.txt": 7, "test.txt": 1}, "indexed": 8,
                                    "skipped": []}
    assert summary["proteins"] == {"rows": 10, "indexed_train": 8, "held_out_test": 2}
    molecules = MoleculeIndex.load(out / retrieval.MOLECULE_INDEX.name)
    assert [r.id for r in molecules.records] == ["1", "2", "3", "4", "5", "6", "7", "99"]
    assert molecules.records[2].description == MOLECULES[2][2]  # the first row of CID 3
    assert molecules.source_digest == retrieval.file_digest(out / retrieval.MOLECULE_RECORDS.name)
    assert [r.cid for r in read_chebi20(out / retrieval.MOLECULE_RECORDS.name, strict=True)] == [
        r.id for r in molecules.records]
    proteins = ProteinIndex.load(out / retrieval.PROTEIN_INDEX.name)
    assert len(proteins) == 8 and proteins.records[0].name.startswith("Protein")


# ------------------------------------------------------------------ packed fingerprints (issue 16)


def _old_top_k(sims, k):
    """The full stable sort the packed index replaced: score descending, then row ascending."""
    import numpy as np

    valid = np.flatnonzero(sims >= 0)
    return valid[np.lexsort((valid, -sims[valid]))][:k].tolist()


def test_packed_tanimoto_equals_rdkit_bulk_on_real_fingerprints():
    """Every score of the packed index is bit-for-bit RDKit's BulkTanimotoSimilarity, on the shipped
    reference's real fingerprints and ChEBI-20 test queries; the top k equal the old full sort's."""
    import numpy as np
    from rdkit import DataStructs

    from biomedgpt.core.chem import morgan_generator

    index = default_molecule_index()
    generator = morgan_generator()
    reference = [generator.GetFingerprint(parse_smiles(r.smiles)) for r in index.records]
    queries = [r.smiles for r in read_chebi20(f"{SHARED}/chebi20/test.txt", strict=True)][:60]
    queries += ["CCO", "C", "[Na+].[Cl-]", "c1ccccc1"]
    for smiles in queries:
        mol = parse_smiles(smiles)
        expected = np.asarray(DataStructs.BulkTanimotoSimilarity(generator.GetFingerprint(mol), reference))
        got = index.fingerprints.tanimoto(retrieval.query_words(mol))
        assert np.array_equal(got, expected), smiles
        for k in (1, 5, 37):
            assert retrieval._top_k(got.copy(), k) == _old_top_k(expected, k)


def test_top_k_ties_exclusions_and_veto():
    import numpy as np

    from biomedgpt.model.fpindex import top_k

    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(-1, 4, size=rng.integers(1, 40)).astype(np.float64) / 3  # many ties, some -1 (excluded)
        scores[scores < 0] = -1.0
        for k in (1, 2, 5, 50):
            assert top_k(scores, k) == _old_top_k(scores, k)
    scores = np.array([0.9, 0.9, 0.5, 1.0, 0.2])
    assert top_k(scores, 2, veto=lambda row: row == 3) == [0, 1]
    assert top_k(scores, 9, veto=lambda row: row in (0, 1, 3)) == [2, 4]
    assert top_k(np.array([]), 3) == []


def test_packed_round_trips_and_empty_fingerprints():
    import numpy as np
    from rdkit import DataStructs

    from biomedgpt.model.fpindex import PackedFingerprints

    rng = np.random.default_rng(1)
    dense = rng.random((50, 2048)) < 0.03
    dense[7] = False  # an empty fingerprint: Tanimoto 0 against anything, as RDKit says
    packed = PackedFingerprints.from_rows(PackedFingerprints.pack_rows(dense), 2048)
    offsets, onbits = packed.to_onbits()
    again = PackedFingerprints.from_onbits(offsets, onbits, 2048)
    assert np.array_equal(again.words, packed.words) and np.array_equal(again.counts, dense.sum(axis=1))
    vectors = []
    for row in dense:
        fp = DataStructs.ExplicitBitVect(2048)
        fp.SetBitsFromList(np.flatnonzero(row).tolist())
        vectors.append(fp)
    assert np.array_equal(PackedFingerprints.from_rdkit(vectors).words, packed.words)
    for q in (0, 7):
        expected = DataStructs.BulkTanimotoSimilarity(vectors[q], vectors)
        assert packed.tanimoto(PackedFingerprints.pack_one(vectors[q])).tolist() == expected
    assert packed.nbytes == 50 * (256 + 2)
