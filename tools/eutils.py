"""NCBI E-utilities: ``fetch_pubmed("BRCA1 breast cancer", n=20)`` → ``[{pmid, title, abstract, year, journal}, ...]``.

Why this shape: the literature store ingests these dicts as they are (the same keys as its JSONL
format). The search is ESearch (JSON, ``idlist`` in relevance order); the records come from EFetch
as MEDLINE text, parsed by Biopython's ``Bio.Medline`` rather than by hand
(https://www.ncbi.nlm.nih.gov/books/NBK25499/).

Both calls are POSTs through the project's HTTP layer: NCBI accepts POST for every E-utility, which
keeps ``api_key`` (``BIOMEDGPT_NCBI_API_KEY``) out of URLs and so out of every log line; the cache
drops it from stored requests and keys. Without a key NCBI allows 3 requests/s, with one 10/s.
"""

from __future__ import annotations

import io
import re

from Bio import Medline
from pydantic import BaseModel, ConfigDict, Field

from biomedgpt.core.errors import InputError
from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.http import InvalidAnswer, ServiceClient, WrapsServiceClient, expect_json, expect_text

TOOL_NAME = "biomedgpt"  # NCBI asks every client to name itself
MAX_RESULTS = 10_000  # ESearch's retmax ceiling


# -- the answers E-utilities give (checked before an answer is cached; tools/http.py) ------------------------
# ESearch: {"esearchresult": {"idlist": ["123", ...]}}; no hits (an empty idlist) is valid; an
# "ERROR" field is NCBI's own failure (reported, not cached). EFetch: MEDLINE text, records start
# with "PMID-"; an empty body (no records for those PMIDs) is valid, an HTML page is not.


class _ESearchResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    idlist: list[str] = Field(default_factory=list)
    ERROR: str | None = None


class ESearchAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    esearchresult: _ESearchResult


def _no_error(data: dict) -> None:
    error = (data.get("esearchresult") or {}).get("ERROR")
    if error:
        raise InvalidAnswer(str(error), failure=True)
    if not all(str(pmid).isdigit() for pmid in data["esearchresult"].get("idlist") or []):
        raise InvalidAnswer("esearchresult.idlist: PMIDs should be digits")


def _medline(text: str) -> None:
    head = text.lstrip()
    if head and not head.startswith("PMID-"):
        raise InvalidAnswer(f"expected MEDLINE records (PMID- …), got {' '.join(head[:60].split())!r}")


EXPECT_ESEARCH = expect_json(ESearchAnswer, _no_error)
EXPECT_MEDLINE = expect_text(_medline)


def _year(date: str | None) -> int | None:
    match = re.search(r"\b(1[89]\d\d|2\d\d\d)\b", date or "")
    return int(match.group(1)) if match else None


class EUtilsClient(WrapsServiceClient):
    """ESearch + EFetch for PubMed through the rate-limited, cached HTTP layer."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.http = ServiceClient("eutils", settings or get_settings())

    def _params(self, **params: object) -> dict:
        out = {"tool": TOOL_NAME, **{k: str(v) for k, v in params.items()}}
        if self.settings.ncbi_api_key is not None:
            out["api_key"] = self.settings.ncbi_api_key.get_secret_value()
        return out

    def search_pubmed(self, query: str, n: int = 20) -> list[str]:
        """PMIDs for ``query`` in PubMed's relevance order (at most ``n``)."""
        what = f"PubMed search {query!r}"
        data = self.http.post_json(self.http.url("esearch.fcgi"),
                                   self._params(db="pubmed", term=query, retmax=n, retmode="json", sort="relevance"),
                                   what=what, expect=EXPECT_ESEARCH)
        return [str(pmid) for pmid in data["esearchresult"].get("idlist", []) or []][:n]

    def fetch_records(self, pmids: list[str]) -> list[dict]:
        """MEDLINE records of ``pmids`` as ``{pmid, title, abstract, year, journal}``, in the order asked."""
        if not pmids:
            return []
        text = self.http.post_text(self.http.url("efetch.fcgi"),
                                   self._params(db="pubmed", id=",".join(pmids), rettype="medline", retmode="text"),
                                   what=f"PubMed records {', '.join(pmids[:3])}{'…' if len(pmids) > 3 else ''}",
                                   expect=EXPECT_MEDLINE)
        records = {}
        for record in Medline.parse(io.StringIO(text)):
            pmid = str(record.get("PMID", "")).strip()
            if not pmid:
                continue
            records[pmid] = {
                "pmid": pmid,
                "title": " ".join(str(record.get("TI", "")).split()),
                "abstract": " ".join(str(record.get("AB", "")).split()),
                "year": _year(record.get("DP")),
                "journal": record.get("JT") or record.get("TA") or "",
            }
        return [records[p] for p in pmids if p in records]


def fetch_pubmed(query: str, n: int = 20, settings: Settings | None = None, *,
                 client: EUtilsClient | None = None) -> list[dict]:
    """Up to ``n`` PubMed records for ``query``: ``[{pmid, title, abstract, year, journal}, ...]``.

    ``client`` is the E-utilities client to use (a ``Services``' one, so its session is reused); without one,
    a client is built for ``settings`` and closed afterwards."""
    query = " ".join((query or "").split())
    if not query:
        raise InputError("empty PubMed query")
    if not isinstance(n, int) or not 1 <= n <= MAX_RESULTS:
        raise InputError(f"n must be 1–{MAX_RESULTS}, got {n!r}")
    if client is not None:
        return client.fetch_records(client.search_pubmed(query, n))
    with EUtilsClient(settings) as own:
        return own.fetch_records(own.search_pubmed(query, n))
