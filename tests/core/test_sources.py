"""core/sources.py: every label the records write is one the citation check accepts, and the links are stable."""

from __future__ import annotations

from biomedgpt.core import sources
from biomedgpt.tools.records import Compound, MoleculeProperties, ModelAnswer, Passage, ProteinEntry, SimilarHit


def test_every_label_matches_the_citation_pattern():
    labels = [sources.pubchem_label(2244), sources.chebi20_label("2244"), sources.uniprot_label("P05067"),
              sources.uniprot_label("P05067-2"), sources.pmid_label(12345678), sources.doc_label("notes.md"),
              sources.RDKIT_LABEL, sources.BIOMEDGPT_LABEL]
    assert all(sources.LABEL_PATTERN.match(label) for label in labels), labels
    assert not sources.LABEL_PATTERN.match("see above")


def test_links():
    assert sources.pubchem_url(2244) == "https://pubchem.ncbi.nlm.nih.gov/compound/2244"
    assert sources.pubchem_url("ZINC1") == ""  # not a CID: no link rather than a wrong one
    assert sources.uniprot_url("P05067") == "https://www.uniprot.org/uniprotkb/P05067/entry"
    assert sources.pubmed_url("123") == "https://pubmed.ncbi.nlm.nih.gov/123/"
    assert sources.pubmed_url(None) == ""


def test_the_records_cite_through_core_sources():
    compound = Compound(cid=2244, title="aspirin")
    assert (compound.label, compound.url) == (sources.pubchem_label(2244), sources.pubchem_url(2244))
    entry = ProteinEntry(accession="P05067")
    assert (entry.label, entry.url) == (sources.uniprot_label("P05067"), sources.uniprot_url("P05067"))
    assert Passage(text="x", pmid="7").label == "PMID 7"
    assert Passage(text="x", source="/tmp/notes.md").label == "Doc notes.md"
    assert SimilarHit(kind="molecule", id="2244", similarity=1.0, source="ChEBI-20 reference").label == "ChEBI-20 CID 2244"
    hit = SimilarHit(kind="protein", id="P05067", similarity=1.0, source="Swiss-Prot reference")
    assert (hit.label, hit.link) == ("UniProt P05067", sources.uniprot_url("P05067"))
    assert (MoleculeProperties.label, ModelAnswer.label) == (sources.RDKIT_LABEL, sources.BIOMEDGPT_LABEL)
