"""UniProtKB REST client: ``UniProtClient().entry("P05067")`` → a ``ProteinEntry``; ``.search(...)``; ``.find("APP human")``.

Why our own parser: the agent needs a few fields a scientist asks about (name, genes, organism,
function, location, family, sequence, GO terms, structures), from the full JSON entry
(https://rest.uniprot.org/uniprotkb/P05067.json) or a ``fields=``-reduced search result, and clear
errors when an accession is malformed, unknown, deleted or demerged. All requests go through the
project's HTTP layer (rate limit, retries, cache, offline mode).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field

from biomedgpt.core.errors import InputError, shorten
from biomedgpt.core.settings import Settings
from biomedgpt.core.sources import UNIPROT_ACCESSION
from biomedgpt.tools.errors import InactiveEntry, NotFound, ServiceError
from biomedgpt.tools.http import ServiceClient, WrapsServiceClient, body_summary, expect_json
from biomedgpt.tools.progress import report
from biomedgpt.tools.records import ProteinEntry

# UniProt's official accession pattern (https://www.uniprot.org/help/accession_numbers).
ACCESSION_RE = re.compile(rf"^{UNIPROT_ACCESSION}$")
MAX_PAGE_SIZE = 500  # UniProt's limit for one search page

# Common names people type after a protein name ("APP human") → NCBI taxonomy ids.
ORGANISMS = {
    "human": 9606, "homo sapiens": 9606, "mouse": 10090, "mus musculus": 10090, "rat": 10116,
    "yeast": 559292, "zebrafish": 7955, "fly": 7227, "drosophila": 7227, "worm": 6239,
    "c. elegans": 6239, "arabidopsis": 3702, "ecoli": 83333, "e. coli": 83333, "bovine": 9913,
    "cow": 9913, "pig": 9823, "chicken": 9031, "xenopus": 8355,
}


# -- the envelopes UniProt answers with (checked before an answer is cached; tools/http.py) --------------------
# An entry always has a non-empty primaryAccession (also an inactive one); a search answers
# {"results": [...]}, and no hits is a valid answer. The fields the parser reads have their types checked.


class _Shape(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Value(_Shape):
    value: str | None = None


class _Name(_Shape):
    fullName: _Value | None = None


class _Description(_Shape):
    recommendedName: _Name | None = None
    submissionNames: list[_Name] | None = None


class _Gene(_Shape):
    geneName: _Value | None = None
    synonyms: list[_Value] | None = None
    orderedLocusNames: list[_Value] | None = None
    orfNames: list[_Value] | None = None


class _Comment(_Shape):
    commentType: str | None = None
    texts: list[_Value] | None = None
    subcellularLocations: list[dict] | None = None
    disease: dict | None = None


class _XRef(_Shape):
    database: str | None = None
    id: str | None = None
    properties: list[dict] | None = None


class _Organism(_Shape):
    scientificName: str | None = None
    taxonId: int | None = None


class _Sequence(_Shape):
    value: str | None = None
    length: int | None = None
    molWeight: float | None = None


class EntryAnswer(_Shape):
    """One UniProtKB entry (``/uniprotkb/P05067.json`` or a search hit)."""

    primaryAccession: str = Field(min_length=1)
    entryType: str | None = None
    uniProtkbId: str | None = None
    proteinDescription: _Description | None = None
    genes: list[_Gene] | None = None
    comments: list[_Comment] | None = None
    uniProtKBCrossReferences: list[_XRef] | None = None
    keywords: list[dict] | None = None
    organism: _Organism | None = None
    sequence: _Sequence | None = None
    inactiveReason: dict | None = None


class SearchAnswer(_Shape):
    """``{"results": [entry, ...]}``; an empty list is a valid answer (no hits)."""

    results: list[EntryAnswer]


EXPECT_ENTRY = expect_json(EntryAnswer)
EXPECT_SEARCH = expect_json(SearchAnswer)


@dataclass
class SearchResult:
    """One search: ``total`` is UniProt's count of all hits (``X-Total-Results``), ``entries`` those fetched."""

    total: int
    entries: list[ProteinEntry] = field(default_factory=list)


def is_accession(text: str) -> bool:
    return bool(ACCESSION_RE.match(text or ""))


def check_accession(accession: str) -> str:
    """The accession, trimmed and upper-cased, or ``InputError`` saying what is wrong with it."""
    value = (accession or "").strip().upper()
    if not ACCESSION_RE.match(value):
        raise InputError(f"{shorten(accession)} is not a UniProt accession (expected e.g. P05067 or A0A023GPI8; "
                         f"pattern [OPQ][0-9][A-Z0-9]{{3}}[0-9] or [A-NR-Z][0-9]([A-Z][A-Z0-9]{{2}}[0-9]){{1,2}})")
    return value


def _texts(comment: dict) -> list[str]:
    return [t.get("value", "").strip() for t in comment.get("texts", []) or [] if t.get("value")]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def protein_from_json(data: dict) -> ProteinEntry:
    """A UniProtKB JSON entry (full or ``fields``-reduced) → ``ProteinEntry``. Inactive entries raise ``InactiveEntry``."""
    accession = data.get("primaryAccession", "")
    entry_type = data.get("entryType", "")
    if entry_type == "Inactive":
        raise inactive_error(data)
    description = data.get("proteinDescription") or {}
    name = ((description.get("recommendedName") or {}).get("fullName") or {}).get("value")
    if not name:
        submissions = description.get("submissionNames") or []
        name = ((submissions[0] if submissions else {}).get("fullName") or {}).get("value")
    genes: list[str] = []
    for gene in data.get("genes", []) or []:
        if gene.get("geneName"):
            genes.append(gene["geneName"].get("value", ""))
        for key in ("synonyms", "orderedLocusNames", "orfNames"):
            genes.extend(item.get("value", "") for item in gene.get(key, []) or [])
    comments = data.get("comments", []) or []
    function = " ".join(t for c in comments if c.get("commentType") == "FUNCTION" for t in _texts(c)) or None
    locations = _unique(
        (loc.get("location") or {}).get("value", "")
        for c in comments if c.get("commentType") == "SUBCELLULAR LOCATION"
        for loc in c.get("subcellularLocations", []) or []
    )
    family = None
    for comment in comments:
        if comment.get("commentType") == "SIMILARITY" and _texts(comment):
            family = re.sub(r"^Belongs to the\s+", "", _texts(comment)[0]).rstrip(".")
            break
    xrefs = data.get("uniProtKBCrossReferences", []) or []
    go_terms = []
    for ref in xrefs:
        if ref.get("database") == "GO":
            term = next((p.get("value") for p in ref.get("properties", []) or [] if p.get("key") == "GoTerm"), "")
            go_terms.append(f"{ref.get('id')} {term}".strip())
    pdb_ids = _unique(ref.get("id", "") for ref in xrefs if ref.get("database") == "PDB")
    diseases = _unique(
        (c.get("disease") or {}).get("diseaseId", "") + (f" ({c['disease']['acronym']})" if (c.get("disease") or {})
                                                        .get("acronym") else "")
        for c in comments if c.get("commentType") == "DISEASE"
    )
    keywords = _unique(k.get("name", "") for k in data.get("keywords", []) or [])
    named = [description.get("recommendedName") or {}, *(description.get("alternativeNames") or [])]
    ec_numbers = _unique(ec.get("value", "") for n in named for ec in n.get("ecNumbers", []) or [])
    organism = data.get("organism") or {}
    sequence = data.get("sequence") or {}
    reviewed = None
    if entry_type:
        reviewed = "unreviewed" not in entry_type.lower() and "reviewed" in entry_type.lower()
    return ProteinEntry(
        accession=accession,
        entry_name=data.get("uniProtkbId"),
        reviewed=reviewed,
        protein_name=name,
        gene_names=_unique(genes),
        organism=organism.get("scientificName"),
        taxon_id=organism.get("taxonId"),
        function=function,
        subcellular_locations=locations,
        family=family,
        sequence=sequence.get("value"),
        length=sequence.get("length"),
        mass=sequence.get("molWeight"),
        go_terms=go_terms,
        pdb_ids=pdb_ids,
        diseases=diseases,
        keywords=keywords,
        ec_numbers=ec_numbers,
    )


def inactive_error(data: dict) -> InactiveEntry:
    """The error for an ``entryType: Inactive`` entry, naming the replacement accessions when there are any."""
    accession = data.get("primaryAccession", "?")
    reason = data.get("inactiveReason") or {}
    kind = str(reason.get("inactiveReasonType", "INACTIVE")).upper()
    replacements = [str(a) for a in reason.get("mergeDemergeTo", []) or []]
    if kind == "DEMERGED":
        message = f"entry {accession} was demerged into {', '.join(replacements)}; look those up instead"
    elif kind == "MERGED":
        message = f"entry {accession} was merged into {', '.join(replacements)}; look that up instead"
    elif kind == "DELETED":
        why = reason.get("deletedReason")
        message = f"entry {accession} was deleted" + (f" ({why})" if why else "") + \
            (f"; see {', '.join(replacements)}" if replacements else " and has no replacement")
    else:
        message = f"entry {accession} is inactive ({kind.lower()})" + \
            (f"; see {', '.join(replacements)}" if replacements else "")
    return InactiveEntry("UniProt", message, replacements=replacements)


class _UniProtHTTP(ServiceClient):
    """The HTTP layer plus UniProt's error body ``{"url": ..., "messages": [...]}``."""

    def explain(self, response: requests.Response, what: str, retried: int) -> ServiceError:
        status = response.status_code
        detail = body_summary(response)
        common = dict(url=response.url, status=status, retried=retried)
        if status == 404:
            return NotFound(self.label, f"no entry for {what} ({detail})", **common)
        if status == 400:
            return ServiceError(self.label, f"rejected {what}: {detail}", **common)
        return super().explain(response, what, retried)


class UniProtClient(WrapsServiceClient):
    """UniProtKB entries, searches and a forgiving ``find`` for names and genes."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.http = _UniProtHTTP("uniprot", settings)

    def entry(self, accession: str) -> ProteinEntry:
        """The entry of ``accession``; the accession is checked before anything is sent."""
        accession = check_accession(accession)
        data = self.http.get_json(self.http.url("uniprotkb", f"{accession}.json"),
                                  what=f"accession {accession}", expect=EXPECT_ENTRY)
        return protein_from_json(data or {})

    def search(self, query: str, fields: Sequence[str] | str | None = None, size: int = 25,
               limit: int | None = None) -> SearchResult:
        """UniProt's query syntax (``gene:APP AND organism_id:9606``); pages of ``size`` until ``limit`` entries.

        ``limit=None`` fetches one page. Further pages follow the ``Link: <...>; rel="next"`` cursor,
        exactly as UniProt hands it out; ``total`` comes from ``X-Total-Results``.
        """
        query = (query or "").strip()
        if not query:
            raise InputError("empty UniProt query")
        if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
            raise InputError(f"UniProt search size must be 1–{MAX_PAGE_SIZE}, got {size!r}")
        if limit is not None and limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        wanted = limit if limit is not None else size
        params: dict[str, Any] | None = {"query": query, "size": min(size, wanted), "format": "json"}
        if fields:
            params["fields"] = fields if isinstance(fields, str) else ",".join(fields)
        url: str | None = self.http.url("uniprotkb", "search")
        total = 0
        entries: list[ProteinEntry] = []
        page = 0
        while url and len(entries) < wanted:
            page += 1
            if page > 1:
                report(f"UniProt search {query!r}: page {page} ({len(entries)} of {min(wanted, total)} entries so far)",
                       service="uniprot", page=page, fetched=len(entries), total=total)
            response, data = self.http.fetch("GET", url, params=params, what=f"search {query!r} (page {page})",
                                             expect=EXPECT_SEARCH)
            header = response.headers.get("X-Total-Results")
            if header and header.isdigit():
                total = int(header)
            for item in (data or {}).get("results", []) or []:
                if item.get("entryType") == "Inactive":
                    continue
                entries.append(protein_from_json(item))
            url = (response.links.get("next") or {}).get("url")
            params = None  # the cursor URL carries every parameter
        if not total:
            total = len(entries)
        return SearchResult(total=total, entries=entries[:wanted])

    def find(self, name_or_gene: str, organism: str | int | None = None, size: int = 5) -> list[ProteinEntry]:
        """Entries for a protein name, gene or accession, e.g. ``"hemoglobin"``, ``"APP human"``, ``"P05067"``.

        Reviewed (Swiss-Prot) entries are preferred; unreviewed ones are returned only when no reviewed
        entry matches. A trailing organism word ("human", "mouse", ...) or ``organism`` (a name or an
        NCBI taxonomy id) narrows the search.
        """
        text = " ".join((name_or_gene or "").split())
        if not text:
            raise InputError("empty protein name or gene")
        if is_accession(text.upper()) and " " not in text:
            return [self.entry(text)]
        words = text.split(" ")
        if organism is None and len(words) > 1:
            for n in (2, 1):
                tail = " ".join(words[-n:]).lower()
                if len(words) > n and tail in ORGANISMS:
                    organism, words = tail, words[:-n]
                    break
        term = " ".join(words).replace('"', "")
        query = f'(gene_exact:"{term}" OR protein_name:"{term}")' if len(words) == 1 else f'protein_name:"{term}"'
        if organism is not None:
            taxon = organism if isinstance(organism, int) else ORGANISMS.get(str(organism).strip().lower())
            if taxon is None and str(organism).strip().isdigit():
                taxon = int(str(organism).strip())
            query += f" AND organism_id:{taxon}" if taxon else f' AND organism_name:"{organism}"'
        reviewed = self.search(f"{query} AND reviewed:true", size=size)
        if reviewed.entries:
            return reviewed.entries
        return self.search(query, size=size).entries
