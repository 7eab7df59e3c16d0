"""UniProtClient against recorded UniProtKB bodies: ``pytest -q tests/tools/test_uniprot.py``."""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.tools.errors import InactiveEntry, NotFound, ServiceError
from biomedgpt.tools.uniprot import SearchResult, UniProtClient, check_accession


@pytest.mark.parametrize("good", ["P05067", "A0A023GPI8", "Q9Y6K9", "o43521"])
def test_official_accession_pattern_accepts(good):
    assert check_accession(good) == good.upper()


@pytest.mark.parametrize("bad", ["", "P0506", "P05067X", "APP", "12345", "P05067-2"])
def test_official_accession_pattern_rejects(bad):
    with pytest.raises(InputError) as caught:
        check_accession(bad)
    assert repr(bad) in str(caught.value)


def test_swissprot_entry_fields(fake_services):
    entry = UniProtClient().entry("P05067")

    assert entry.accession == "P05067" and entry.entry_name == "A4_HUMAN" and entry.reviewed is True
    assert entry.protein_name == "Amyloid-beta precursor protein"
    assert entry.gene_names == ["APP", "A4", "AD1"]
    assert entry.organism == "Homo sapiens" and entry.taxon_id == 9606
    assert entry.function.startswith("Functions as a cell surface receptor")
    assert entry.subcellular_locations[:2] == ["Cell membrane", "Membrane"]
    assert entry.family == "APP family"
    assert entry.length == 770 == len(entry.sequence) and entry.mass == 86943
    assert "GO:0106003 C:amyloid-beta complex" in entry.go_terms
    assert entry.pdb_ids[:2] == ["1AAP", "1AMB"]
    assert [a.path for a in fake_services.requests_to("/uniprotkb/")] == ["/uniprotkb/P05067.json"]


def test_trembl_entry_uses_the_submission_name(fake_services):
    entry = UniProtClient().entry("a8y1c3")

    assert entry.reviewed is False
    assert entry.protein_name == "Protein CBG22016"
    assert "CBG22016" in entry.gene_names


def test_deleted_entry(fake_services):
    with pytest.raises(InactiveEntry) as caught:
        UniProtClient().entry("I8FBX0")
    assert str(caught.value) == "UniProt: entry I8FBX0 was deleted and has no replacement"
    assert caught.value.replacements == []


def test_demerged_entry_names_its_replacements(fake_services):
    with pytest.raises(InactiveEntry) as caught:
        UniProtClient().entry("Q00007")
    assert caught.value.replacements == ["P63151", "P63150"]
    assert "demerged into P63151, P63150" in str(caught.value)
    assert isinstance(caught.value, NotFound)


def test_malformed_accession_sends_nothing(fake_services):
    with pytest.raises(InputError):
        UniProtClient().entry("NOT-AN-ACC")
    assert fake_services.count() == 0


def test_unknown_accession_is_not_found(fake_services):
    with pytest.raises(NotFound) as caught:
        UniProtClient().entry("A0A999ZZZ9")
    assert "A0A999ZZZ9" in str(caught.value) and "Resource not found" in str(caught.value)


def test_search_follows_the_link_cursor_and_reads_the_total(fake_services, progress):
    result = UniProtClient().search("glucose", size=2, limit=10)

    assert isinstance(result, SearchResult)
    assert result.total == 4
    assert [e.accession for e in result.entries] == ["P13866", "P19926", "P0DTR4", "A8Y1C3"]
    pages = fake_services.requests_to("/uniprotkb/search")
    assert len(pages) == 2 and "cursor=page2" in pages[1].query
    assert progress.messages() == ["UniProt search 'glucose': page 2 (2 of 4 entries so far)"]


def test_search_stops_at_the_limit(fake_services):
    result = UniProtClient().search("glucose", size=2, limit=2)

    assert result.total == 4 and len(result.entries) == 2
    assert fake_services.count("/uniprotkb/search") == 1


def test_search_size_is_bounded(fake_services):
    with pytest.raises(InputError):
        UniProtClient().search("glucose", size=501)
    assert fake_services.count() == 0


@pytest.mark.parametrize("query, quoted", [
    ("nosuchfield:abc", "'nosuchfield' is not a valid search field"),
    ("insulin AND (", "query parameter has an invalid syntax"),
])
def test_bad_queries_quote_uniprots_message(fake_services, query, quoted):
    with pytest.raises(ServiceError) as caught:
        UniProtClient().search(query)
    assert quoted in str(caught.value) and caught.value.status == 400
    assert fake_services.count("/uniprotkb/search") == 1  # a 400 is not retried


def test_find_by_gene_and_organism_word(fake_services):
    found = UniProtClient().find("APP human")

    assert [e.accession for e in found] == ["P05067"]
    query = fake_services.requests_to("/uniprotkb/search")[0].query
    assert "organism_id%3A9606" in query and "reviewed%3Atrue" in query


def test_find_falls_back_to_unreviewed_and_can_find_nothing(fake_services):
    assert UniProtClient().find("APP", organism="mouse") == []
    assert fake_services.count("/uniprotkb/search") == 2  # reviewed first, then all


def test_find_with_an_accession_fetches_the_entry(fake_services):
    assert UniProtClient().find("P05067")[0].protein_name == "Amyloid-beta precursor protein"
