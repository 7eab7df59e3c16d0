"""Protein evidence by alignment (issue 15, item 5): ``pytest tests/tools/test_alignment.py``.

Real pyhmmer (phmmer) over the shipped Swiss-Prot reference and over FASTA files written here; no mocks,
because what matters is that HMMER's E-values, identities and coverages mean what the answers say.
"""

from __future__ import annotations

import random

import pytest

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import Settings
from biomedgpt.model.alignment import clear_cache, open_protein_fasta, search_homologues, shipped_database
from biomedgpt.tools.records import SimilarHit
from biomedgpt.tools.similarity import protein_homologues, similar_known

AMINO = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def probe() -> tuple[str, str]:
    """(accession, sequence) of a shipped reference protein with a close paralogue in the reference too."""
    database = shipped_database()
    i = database.ids.index("C0HM46")  # Kunitz-type trypsin inhibitor 1; C0HM47 is its 77 %-identity paralogue
    return database.ids[i], database.sequence(i)


def _mutate(sequence: str, fraction: float, seed: int = 0) -> str:
    rng = random.Random(seed)
    residues = list(sequence)
    for i in rng.sample(range(len(residues)), int(len(residues) * fraction)):
        residues[i] = rng.choice(AMINO.replace(residues[i], ""))
    return "".join(residues)


def _shuffled(sequence: str, seed: int = 0) -> str:
    residues = list(sequence)
    random.Random(seed).shuffle(residues)
    return "".join(residues)


def test_identical_sequence_is_found_with_identity_one_and_tiny_evalue(probe):
    accession, sequence = probe
    hits = search_homologues(sequence, k=3, settings=Settings())
    assert hits[0].id == accession
    assert hits[0].identity == 1.0 and hits[0].coverage == 1.0 and hits[0].identical
    assert hits[0].evalue < 1e-50
    assert [h.evalue for h in hits] == sorted(h.evalue for h in hits)
    # the tool's record: identical to the query, judged by E-value
    shown = similar_known(sequence=sequence, k=2, leave_self_out=False)[0]
    assert shown.id == accession and shown.identical and shown.significant
    assert shown.evalue == hits[0].evalue and shown.similarity == 1.0
    assert "identical to the query" in shown.markdown()[0]
    assert "100 % identity over 100 % of the query" in shown.chat_text()


def test_leave_self_out_drops_the_identical_entry(probe):
    accession, sequence = probe
    hits = similar_known(sequence=sequence, k=3)
    assert accession not in [h.id for h in hits]
    assert hits and hits[0].id == "C0HM47" and hits[0].identity < 1.0 and hits[0].evalue <= 1e-5


def test_mutated_copy_is_found_with_identity_below_one(probe):
    accession, sequence = probe
    mutated = _mutate(sequence, 0.15)
    hit = search_homologues(mutated, k=1, settings=Settings())[0]
    assert hit.id == accession
    assert 0.7 < hit.identity < 1.0 and hit.coverage > 0.9 and not hit.identical
    assert hit.evalue < 1e-20
    record = protein_homologues(mutated, k=1, settings=Settings())[0]
    assert not record.identical and f"{hit.identity * 100:.0f} % identity" in record.chat_text()


def test_shuffled_sequence_has_no_hit_under_the_cutoff(probe):
    _, sequence = probe
    query = _shuffled(sequence, seed=3)
    assert all(h.evalue > 1e-5 for h in search_homologues(query, k=5, settings=Settings()))
    records = protein_homologues(query, k=5, settings=Settings())
    # at most the best (non-significant) alignment, marked as no evidence
    assert len(records) <= 1 and all(not r.significant for r in records)
    assert all("not a close homologue" in r.chat_text() for r in records)


def test_user_fasta_is_searched(tmp_path, probe):
    _, sequence = probe
    rng = random.Random(5)
    own = "".join(rng.choice(AMINO) for _ in range(180))  # in no reference: only the user's file can find it
    fasta = tmp_path / "mine.fasta"
    fasta.write_text(f">sp|Q99999|TEST_HUMAN Test protein alpha OS=Homo sapiens OX=9606\n{own[:90]}\n{own[90:]}\n"
                     f">decoy unrelated\n{_shuffled(own, 9)}\n")
    settings = Settings(protein_db=str(fasta))
    hits = search_homologues(_mutate(own, 0.1, seed=2), k=3, settings=settings)
    assert hits[0].id == "Q99999" and hits[0].name == "Test protein alpha"
    assert hits[0].source == "BIOMEDGPT_PROTEIN_DB mine.fasta" and hits[0].evalue < 1e-20
    assert hits[0].sequence == own
    # the shipped reference is still searched beside it
    assert search_homologues(sequence, k=1, settings=settings)[0].source == "Swiss-Prot reference"
    # read once per process: the same object until the file changes
    assert open_protein_fasta(fasta) is open_protein_fasta(fasta)
    before = open_protein_fasta(fasta)
    fasta.write_text(fasta.read_text() + f">extra\n{own[:50]}\n")  # a new size: a new cache key
    assert open_protein_fasta(fasta) is not before and len(open_protein_fasta(fasta)) == 3
    clear_cache()


@pytest.mark.parametrize("text, problem", [
    ("MKTAYIAKQRQISFVKSHF\n", "expected FASTA to start with >"),
    (">a\nMKT123\n", "illegal character 1"),
    ("", "is empty"),
    (">a\nACGTACGTACGTACGTAACCGGTT\n", "nucleotide"),
    (">a\n>b\nMKTAYIAKQR\n", "has no residues"),
])
def test_malformed_fasta_is_one_config_error_line(tmp_path, text, problem):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(text)
    with pytest.raises(ConfigError) as error:
        search_homologues("MKTAYIAKQRQISFVKSHFSRQ", settings=Settings(protein_db=str(fasta)))
    message = str(error.value)
    assert "\n" not in message and str(fasta) in message and problem in message


def test_missing_fasta_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.fasta does not exist"):
        search_homologues("MKTAYIAKQR", settings=Settings(protein_db=str(tmp_path / "nope.fasta")))


def test_answer_says_no_close_homologue():
    from biomedgpt.agent.answer import _evidence_hits, _no_homologue

    far = SimilarHit(kind="protein", id="P12345", name="Far protein", similarity=0.3, source="Swiss-Prot reference",
                     evalue=0.4, identity=0.3, coverage=0.2, evalue_cutoff=1e-5).model_dump()
    near = dict(far, id="P11111", evalue=3e-45, identity=0.98, coverage=1.0, similarity=0.98)
    kept, dropped = _evidence_hits([near, far], 0.5, 1e-5)
    assert [h.id for h in kept] == ["P11111"] and dropped == 1
    assert "E-value 3e-45, 98 % identity over 100 % of the query" in kept[0].markdown()[0]
    line = _no_homologue([far], 1e-5)
    assert line.startswith("No close homologue in the reference (best E-value 0.4, Far protein [UniProt P12345])")
    assert _no_homologue([], 1e-5).startswith("No close homologue in the reference: no alignment")


def test_composed_answer_for_an_unknown_sequence_says_no_close_homologue(probe):
    from biomedgpt.agent.answer import compose_answer

    query = _shuffled(probe[1], seed=3)
    similar = [h.model_dump() for h in protein_homologues(query, k=5, settings=Settings())]
    state = {"intent": "describe", "entity": {"kind": "protein", "source": "sequence", "value": query},
             "similar": similar}
    text = compose_answer("What is this protein? " + query, state, [], settings=Settings())
    assert "No close homologue in the reference" in text and "Nearest known proteins" not in text
    known = {**state, "entity": {**state["entity"], "value": probe[1]},
             "similar": [h.model_dump() for h in similar_known(sequence=probe[1], k=2, leave_self_out=False)]}
    text = compose_answer("What is this protein? " + probe[1], known, [], settings=Settings())
    assert "identical to the query, E-value" in text and "No close homologue" not in text
