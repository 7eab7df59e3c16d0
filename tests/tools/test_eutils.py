"""fetch_pubmed against synthetic ESearch/EFetch bodies in NCBI's documented shape: ``pytest -q tests/tools/test_eutils.py``."""

from __future__ import annotations

import sqlite3

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.core.settings import get_settings, reset_settings
from biomedgpt.tools.errors import ServiceError
from biomedgpt.tools.eutils import fetch_pubmed
from biomedgpt.tools.http import cache_path
from biomedgpt.tools.services import reset_services

ESEARCH = "/entrez/eutils/esearch.fcgi"
EFETCH = "/entrez/eutils/efetch.fcgi"


def test_fetch_pubmed_returns_parsed_medline_records(fake_services):
    records = fetch_pubmed("beta-catenin pilomatricoma", n=2)

    assert [r["pmid"] for r in records] == ["10192393", "10196379"]
    first = records[0]
    assert set(first) == {"pmid", "title", "abstract", "year", "journal"}
    assert first["title"] == "A common human skin tumour is caused by activating mutations in beta-catenin."
    assert first["abstract"].startswith("WNT signalling orchestrates")
    assert "beta-catenin-stabilizing mutations" in first["abstract"]  # wrapped lines joined back
    assert first["year"] == 1999 and first["journal"] == "Nature genetics"
    assert records[1]["year"] is None and records[1]["journal"] == ""  # absent fields stay empty
    search = fake_services.requests_to(ESEARCH)[0]
    assert search.method == "POST" and "db=pubmed" in search.body and "retmax=2" in search.body
    fetch = fake_services.requests_to(EFETCH)[0]
    assert "id=10192393%2C10196379" in fetch.body and "rettype=medline" in fetch.body


def test_n_limits_the_records(fake_services):
    assert [r["pmid"] for r in fetch_pubmed("BRCA1", n=1)] == ["10192393"]


def test_api_key_is_sent_in_the_body_and_never_stored(fake_services, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef0123"
    monkeypatch.setenv("BIOMEDGPT_NCBI_API_KEY", secret)
    reset_settings()
    reset_services()

    fetch_pubmed("BRCA1", n=2)

    sent = fake_services.requests_to("/entrez/eutils/")
    assert all(f"api_key={secret}" in a.body and secret not in a.path + a.query for a in sent)
    # fetch_pubmed closed the client it built, so every byte of the cache is on disk
    stored = b""
    for path in cache_path(get_settings()).parent.glob("http_cache.sqlite*"):
        stored += path.read_bytes()
    assert stored and secret.encode() not in stored
    rows = sqlite3.connect(cache_path(get_settings())).execute("select count(*) from responses").fetchone()[0]
    assert rows == 2


def test_esearch_error_is_reported(fake_services):
    # An empty term reaches the server only through the client class; fetch_pubmed refuses it first.
    from biomedgpt.tools.eutils import EUtilsClient

    with pytest.raises(ServiceError) as caught:
        EUtilsClient().search_pubmed(" ", 5)
    assert "Empty term and query_key" in str(caught.value) and "NCBI E-utilities" in str(caught.value)
    with pytest.raises(InputError):
        fetch_pubmed("   ")
