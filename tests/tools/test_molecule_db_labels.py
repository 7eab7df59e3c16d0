"""Hits from a BIOMEDGPT_MOLECULE_DB file are cited by their file, never as PubChem CIDs (issue 10): the file's
ids are its own even when they are all digits, and the label is one the answer check accepts as a citation."""

from __future__ import annotations

from biomedgpt.agent.answer import check_citations, cited_labels
from biomedgpt.core.settings import Settings, use_settings
from biomedgpt.core.sources import LABEL_PATTERN
from biomedgpt.model import molecule_db
from biomedgpt.tools.records import SimilarHit
from biomedgpt.tools.similarity import similar_known


def test_molecule_db_hits_are_labelled_by_their_file(tmp_path):
    path = tmp_path / "refs.smi"
    path.write_text("CCO 1 ethanol\nCCCO 2 propan-1-ol\nCCCCO 3 butan-1-ol\nCCN E7 ethylamine\n")
    with use_settings(Settings(home=tmp_path / "home", molecule_db=str(path))):
        molecule_db._OPEN.clear()
        try:
            hits = similar_known(smiles="CCCCCO", k=2, online=False)
            named = similar_known(smiles="CCN", k=1, online=False, leave_self_out=False)[0]
        finally:
            molecule_db._OPEN.clear()
    assert [h.label for h in hits] == ["molecule reference refs.smi 3", "molecule reference refs.smi 2"]
    assert named.label == "molecule reference refs.smi E7"
    assert all(LABEL_PATTERN.match(h.label) for h in [*hits, named])
    assert not any("PubChem" in h.chat_text() for h in hits)
    text = f"Butanol is the nearest known molecule [{hits[0].label}]."
    assert cited_labels(text) == ["molecule reference refs.smi 3"]
    sources = {hits[0].label: {"label": hits[0].label}}
    assert check_citations(text, sources) == text  # a label the tool returned is verified, not marked


def test_other_sources_keep_their_labels():
    def hit(source: str, id_: str, kind: str = "molecule") -> SimilarHit:
        return SimilarHit(kind=kind, id=id_, similarity=0.5, source=source)

    assert hit("PubChem fastsimilarity_2d", "2244").label == "PubChem CID 2244"
    assert hit("ChEBI-20 reference", "2244").label == "ChEBI-20 CID 2244"
    assert hit("Swiss-Prot reference", "P05067", "protein").label == "UniProt P05067"
    assert hit("molecule reference my refs.tsv", "12").label == "molecule reference my refs.tsv 12"
    assert LABEL_PATTERN.match("molecule reference my refs.tsv 12")
