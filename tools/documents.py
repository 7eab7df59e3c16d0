"""The literature readers: ``iter_documents(path, report)`` yields the ``Document``s of one file.

Formats, chosen by suffix (``.gz`` allowed): JSONL/JSON (``pmid, title, abstract[, year, journal]``),
MEDLINE (``Bio.Medline``), PubMed XML (``Bio.Entrez``), plain text and Markdown. A row that cannot be
read is counted in the ``IngestReport`` with the reason (first 50 kept), a file with binary content is
skipped and counted, and a file of unknown type is an ``InputError``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from Bio import Entrez, Medline
from Bio.Entrez.Parser import CorruptedXMLError, NotXMLError, ValidationError
from pydantic import BaseModel, Field

from biomedgpt.core.errors import InputError

log = logging.getLogger(__name__)


class IngestReport(BaseModel):
    """What an ingest did. ``chunks_skipped`` were already in the store; ``skipped_rows`` could not be read
    (``problems`` says which and why, first 50)."""

    files: int = 0
    records: int = 0
    chunks_added: int = 0
    chunks_skipped: int = 0
    skipped_rows: int = 0
    skipped_files: int = 0  # whole files not read: binary content (an executable or image named .md/.txt)
    problems: list[str] = Field(default_factory=list)

    def problem(self, message: str) -> None:
        self.skipped_rows += 1
        self._note(message)

    def skip_file(self, message: str) -> None:
        self.skipped_files += 1
        self._note(message)

    def _note(self, message: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(message)
        log.info("skipped: %s", message)



@dataclass
class Document:
    """One record to index: an abstract (with its PMID) or a text file."""

    text: str
    source_id: str  # "pmid:123" or "file:notes.md" -- part of every chunk id
    source: str  # where it came from (path, "pubmed", ...)
    pmid: str | None = None
    title: str | None = None
    year: int | None = None
    journal: str | None = None



JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
MEDLINE_SUFFIXES = (".medline", ".nbib", ".med")
XML_SUFFIXES = (".xml",)
TEXT_SUFFIXES = (".txt", ".text", ".md", ".markdown")
ALL_SUFFIXES = JSONL_SUFFIXES + MEDLINE_SUFFIXES + XML_SUFFIXES + TEXT_SUFFIXES


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise InputError(f"{path} is not a readable gzip file ({error})") from error
    return data


def _year(value) -> int | None:
    if value is None:
        return None
    match = re.search(r"\b(1[5-9]\d\d|20\d\d|21\d\d)\b", str(value))
    return int(match.group(1)) if match else None


def _pmid(value) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise ValueError(f"pmid {value!r} is not a number")
    return str(int(text))


def _abstract_document(source: str, pmid, title, abstract, year=None, journal=None) -> Document:
    pmid = _pmid(pmid)
    title = " ".join(str(title).split()) if title else None
    abstract = str(abstract or "").strip()
    if not abstract and not title:
        raise ValueError("no title and no abstract")
    source_id = f"pmid:{pmid}" if pmid else f"doc:{hashlib.sha256((title or abstract).encode()).hexdigest()[:16]}"
    return Document(text=abstract or title, source_id=source_id, source=source, pmid=pmid, title=title,
                    year=_year(year), journal=str(journal) if journal else None)


def document_from_record(record: dict, source: str) -> Document:
    """A JSON object ``{pmid, title, abstract[, year, journal]}`` (``text`` is accepted for ``abstract``)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    abstract = record.get("abstract", record.get("text"))
    return _abstract_document(source, record.get("pmid"), record.get("title"), abstract,
                              record.get("year"), record.get("journal"))


def read_jsonl(path: Path, report: IngestReport) -> Iterator[Document]:
    """Abstracts of a JSONL file (one object a line) or a JSON file (one object or a list of them)."""
    text = _open_bytes(path).decode("utf-8", errors="replace")
    if _suffix(path) == ".json" or text.lstrip().startswith("["):  # one JSON document: a record or a list
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as error:
            if _suffix(path) == ".json":
                report.problem(f"{path}: not valid JSON ({error})")
                return
            raise InputError(f"{path} is not valid JSON ({error})") from error
        rows = rows if isinstance(rows, list) else [rows]
        numbered = [(i, row) for i, row in enumerate(rows, 1)]
    else:
        numbered = []
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((line_no, json.loads(line)))
            except json.JSONDecodeError as error:
                report.problem(f"{path}:{line_no}: not valid JSON ({error.msg})")
    for line_no, row in numbered:
        try:
            yield document_from_record(row, str(path))
        except ValueError as error:
            report.problem(f"{path}:{line_no}: {error}")


def _read_medline(path: Path, report: IngestReport) -> Iterator[Document]:
    handle = io.StringIO(_open_bytes(path).decode("utf-8", errors="replace"))
    for number, record in enumerate(Medline.parse(handle), 1):
        try:
            yield _abstract_document(str(path), record.get("PMID"), record.get("TI"), record.get("AB"),
                                     record.get("DP"), record.get("JT") or record.get("TA"))
        except ValueError as error:
            report.problem(f"{path}: MEDLINE record {number} (PMID {record.get('PMID', '?')}): {error}")


def _xml_text(value) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _read_pubmed_xml(path: Path, report: IngestReport) -> Iterator[Document]:
    handle = io.BytesIO(_open_bytes(path))
    try:
        # Entrez.read (not parse): Biopython reads a <PubmedArticleSet> as a dict of two lists.
        data = Entrez.read(handle)
    except (NotXMLError, CorruptedXMLError, ValidationError, RuntimeError, ValueError, OSError) as error:
        # OSError: the file names a DTD that Biopython does not ship and it could not be fetched offline.
        raise InputError(f"{path} is not PubMed XML that Biopython can read ({error}); expected a "
                         "<PubmedArticleSet> from efetch (db=pubmed, retmode=xml)") from error
    if not isinstance(data, dict) or "PubmedArticle" not in data:
        raise InputError(f"{path} is XML but not a <PubmedArticleSet> (found {type(data).__name__}); expected "
                         "efetch output (db=pubmed, retmode=xml)")
    for _book in data.get("PubmedBookArticle", []) or []:
        report.problem(f"{path}: a PubmedBookArticle (book chapter) is not read")
    for number, article in enumerate(data["PubmedArticle"], 1):
        try:
            citation = article["MedlineCitation"]
            body = citation["Article"]
            parts = []
            for piece in body.get("Abstract", {}).get("AbstractText", []):
                label = getattr(piece, "attributes", {}).get("Label")
                parts.append(f"{label}: {_xml_text(piece)}" if label else _xml_text(piece))
            journal = body.get("Journal", {})
            pub_date = journal.get("JournalIssue", {}).get("PubDate", {})
            year = pub_date.get("Year") or pub_date.get("MedlineDate")
            if not year and body.get("ArticleDate"):
                year = body["ArticleDate"][0].get("Year")
            yield _abstract_document(str(path), _xml_text(citation.get("PMID")), _xml_text(body.get("ArticleTitle")),
                                     "\n\n".join(parts), year, _xml_text(journal.get("Title")) or None)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            report.problem(f"{path}: article {number} is not a PubmedArticle with a citation ({error})")


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _read_text(path: Path, report: IngestReport) -> Iterator[Document]:
    raw = _open_bytes(path).decode("utf-8", errors="replace")
    title = None
    if _suffix(path) in (".md", ".markdown"):
        lines = []
        for line in raw.splitlines():
            heading = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
            if heading:
                title = title or heading.group(1)
                # A heading is its own paragraph, so it never merges into the next sentence.
                lines.extend(["", heading.group(1).rstrip(".") + ".", ""])
                continue
            line = re.sub(r"^\s*([-*+]|\d+[.)])\s+", "", line)  # list bullets
            line = _MD_LINK.sub(r"\1", line)
            line = re.sub(r"(\*\*|__|`)", "", line)
            line = re.sub(r"(?<!\w)[*_]([^*_\n]+)[*_](?!\w)", r"\1", line)  # *italic*, _italic_
            lines.append(line)
        raw = "\n".join(lines)
    if not raw.strip():
        report.problem(f"{path}: empty file")
        return
    yield Document(text=raw, source_id=f"file:{path.name}", source=str(path), title=title or path.stem)


def _looks_like_medline(path: Path) -> bool:
    head = _open_bytes(path)[:2000].decode("utf-8", errors="replace").lstrip()
    return head.startswith("PMID-")


def looks_binary(data: bytes, sample: int = 8192) -> bool:
    """True for content that is not text: a NUL byte in the first ``sample`` bytes, or more than 10 % of them
    undecodable as UTF-8 or control characters (an ELF, a PDF's binary streams, an image)."""
    head = data[:sample]
    if not head:
        return False
    if b"\x00" in head:
        return True
    text = head.decode("utf-8", errors="replace")
    odd = text.count("\ufffd") + sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v\b")
    return odd > 0.1 * len(text)


def iter_documents(path: Path, report: IngestReport) -> Iterator[Document]:
    """Documents of one file, chosen by its suffix (``.gz`` allowed); unreadable rows go to ``report``.

    A file whose content is binary (whatever its name) is skipped and counted in ``report.skipped_files``.
    """
    suffix = _suffix(path)
    if suffix in ALL_SUFFIXES and looks_binary(_open_bytes(path)):
        report.skip_file(f"{path}: binary content (not text), not ingested; ingest reads text formats "
                         f"({', '.join(ALL_SUFFIXES)})")
        return
    if suffix in JSONL_SUFFIXES:
        yield from read_jsonl(path, report)
    elif suffix in XML_SUFFIXES:
        yield from _read_pubmed_xml(path, report)
    elif suffix in MEDLINE_SUFFIXES or (suffix in (".txt", ".text") and _looks_like_medline(path)):
        yield from _read_medline(path, report)
    elif suffix in TEXT_SUFFIXES:
        yield from _read_text(path, report)
    else:
        raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; ingest reads "
                         f"{', '.join(ALL_SUFFIXES)} (optionally .gz)")


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, plus the readable files inside named folders (recursively, sorted)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for entry in paths:
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p) in ALL_SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                raise InputError(f"{path}: the folder holds no file that ingest reads ({', '.join(ALL_SUFFIXES)})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files

