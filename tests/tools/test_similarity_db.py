"""BIOMEDGPT_MOLECULE_DB: a large molecule reference file, fingerprinted once, cached, searched packed.

Run: ``.venv/bin/python -m pytest -q tests/tools/test_similarity_db.py``. The file's hits must be those
the in-memory ``MoleculeIndex`` gives for the same rows (same Tanimoto, same leave-self-out rule).
"""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import Settings, use_settings
from biomedgpt.model import molecule_db
from biomedgpt.model.molecule_db import MoleculeDB, open_molecule_db
from biomedgpt.model.retrieval import MoleculeIndex
from biomedgpt.tools.similarity import similar_known

ROWS = [
    ("1", "CCO", "ethanol"),
    ("2", "CCCO", "propan-1-ol"),
    ("3", "CCCCO", "butan-1-ol"),
    ("4", "c1ccccc1", "benzene"),
    ("5", "Cc1ccccc1", "toluene"),
    ("6", "CC(=O)Oc1ccccc1C(=O)O", "aspirin"),
    ("7", "OC(=O)c1ccccc1O", "salicylic acid"),
    ("8", "Oc1ccccn1", "2-hydroxypyridine"),  # the same standard InChIKey as its tautomer 2-pyridone
]
QUERIES = ["OC(=O)c1ccccc1OC(C)=O", "CCO", "c1ccccc1O", "O=c1cccc[nH]1", "CC(C)O"]


@pytest.fixture
def smi(tmp_path):
    path = tmp_path / "refs.smi"
    path.write_text("# my references\n" + "".join(f"{s} {i} {d}\n" for i, s, d in ROWS) + "\nnot_a_smiles 99\n")
    return path


@pytest.fixture
def home(tmp_path):
    settings = Settings(home=tmp_path / "home")
    with use_settings(settings):
        molecule_db._OPEN.clear()
        yield settings
    molecule_db._OPEN.clear()


def test_smi_file_gives_the_hits_of_the_in_memory_index(smi, home):
    db = open_molecule_db(smi)
    index = MoleculeIndex.build([(i, s, "", d) for i, s, d in ROWS])  # .smi: the rest of the line is the name
    assert len(db) == len(ROWS) and db.skipped == 1 and db.skipped_lines == [11]
    for query in QUERIES:
        for k in (1, 3, 8):
            for leave_self_out in (True, False):
                assert db.search(query, k, leave_self_out=leave_self_out) == \
                    index.search(query, k, leave_self_out=leave_self_out), (query, k)
    kept = db.search("CCCO", 2, exclude_ids=["1", "3"], leave_self_out=False)
    assert kept == index.search("CCCO", 2, exclude_ids=["1", "3"], leave_self_out=False) and kept[0].id == "2"
    assert db.search("CCCO", 8, exclude_ids=["1", "3"]) == index.search("CCCO", 8, exclude_ids=["1", "3"])
    hit = db.search("OC(=O)c1ccccc1OC(C)=O", 1)[0]  # aspirin itself is left out, by InChIKey
    assert (hit.id, hit.name, hit.smiles) == ("7", "salicylic acid", "OC(=O)c1ccccc1O")
    assert db.nbytes <= 300 * len(db)


def test_similar_known_uses_the_setting_and_labels_the_file(smi, tmp_path):
    with use_settings(Settings(home=tmp_path / "home", molecule_db=str(smi))):
        molecule_db._OPEN.clear()
        hits = similar_known(smiles="CCCCCO", k=2, online=False)
    molecule_db._OPEN.clear()
    assert [h.id for h in hits] == ["3", "2"]
    assert all(h.source == "molecule reference refs.smi" for h in hits)
    assert hits[0].name == "butan-1-ol"


def test_tsv_with_header_reads_named_columns(tmp_path, home):
    path = tmp_path / "refs.tsv"
    path.write_text("CID\tSMILES\tdescription\n" + "".join(f"{i}\t{s}\tThe molecule is {d}.\n" for i, s, d in ROWS))
    hit = open_molecule_db(path).search("CCCCCO", 1)[0]
    assert (hit.id, hit.smiles, hit.description, hit.name) == ("3", "CCCCO", "The molecule is butan-1-ol.", None)
    named = tmp_path / "named.tsv"
    named.write_text("name\tsmiles\tid\textra\nethanol\tCCO\tE1\tx\n")
    hit = open_molecule_db(named).search("CCO", 1, leave_self_out=False)[0]
    assert (hit.id, hit.name, hit.similarity) == ("E1", "ethanol", 1.0)


def test_cached_once_and_rebuilt_when_the_file_changes(smi, home, monkeypatch):
    first = open_molecule_db(smi)
    caches = list((home.home / "molecule_db").glob("refs-*.npz"))
    assert len(caches) == 1 and not list((home.home / "molecule_db").glob(".*.tmp"))
    molecule_db._OPEN.clear()

    def no_build(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(MoleculeDB, "build", no_build)
    again = open_molecule_db(smi)
    assert (again.fingerprints.words == first.fingerprints.words).all() and list(again.offsets) == list(first.offsets)
    monkeypatch.undo()
    smi.write_text(smi.read_text() + "CCCCCCO 10 hexanol\n")
    assert len(open_molecule_db(smi)) == len(ROWS) + 1  # the changed file, fingerprinted again
    assert len(list((home.home / "molecule_db").glob("refs-*.npz"))) == 2


def test_parallel_build_equals_serial(tmp_path, monkeypatch):
    path = tmp_path / "many.smi"
    path.write_text("".join(f"{s} {i}-{n}\n" for n in range(30) for i, s, _ in ROWS))
    serial = MoleculeDB.build(path, workers=1)
    monkeypatch.setattr(molecule_db, "CHUNK_LINES", 50)
    monkeypatch.setattr(molecule_db, "PARALLEL_MIN_LINES", 0)
    parallel = MoleculeDB.build(path, workers=2)
    assert (parallel.fingerprints.words == serial.fingerprints.words).all()
    assert list(parallel.offsets) == list(serial.offsets) and len(serial) == 30 * len(ROWS)


@pytest.mark.parametrize("name, content, problem", [
    ("missing.smi", None, "does not exist"),
    ("refs.smi.gz", b"\x1f\x8b\x08\x00rest", "gzip-compressed"),
    ("nosmiles.tsv", b"id\tstructure\n1\tCCO\n", "'smiles' column"),
    ("noid.tsv", b"smiles\tname\nCCO\tethanol\n", "no 'id'"),
    ("junk.smi", b"hello world\nfoo bar\n", "none of its 2 SMILES could be parsed"),
    ("empty.smi", b"# only a comment\n\n", "holds no molecules"),
    ("empty2.smi", b"", "empty"),
    ("binary.smi", b"CCO\x00\x01", "binary"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, home, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as error:
        open_molecule_db(path)
    message = str(error.value)
    assert problem in message and str(path) in message and "BIOMEDGPT_MOLECULE_DB" in message
    assert "\n" not in message


def test_rows_without_an_id_are_named_by_position(tmp_path, home):
    path = tmp_path / "bare.smi"
    path.write_text("CCO\nc1ccccc1\n")
    hits = open_molecule_db(path).search("c1ccccc1", 2, leave_self_out=False)
    assert [(h.id, h.name) for h in hits] == [("row 2", None), ("row 1", None)]


def test_an_unwritable_cache_still_answers(smi, home, monkeypatch):
    def refuse(self, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(MoleculeDB, "save", refuse)
    assert open_molecule_db(smi).search("CCCCCO", 1)[0].id == "3"
