"""A large molecule reference for similarity search: ``BIOMEDGPT_MOLECULE_DB=refs.smi biomedgpt ask ...``
or ``open_molecule_db("refs.tsv").search("CCO", k=5)``.

Why: the shipped ChEBI-20 reference holds 3,296 molecules; a lab's compound collection, ChEMBL or a
PubChem subset holds 10^5-10^6. Such a file is fingerprinted once (the project's one fingerprint,
``core.chem.morgan_generator``), packed (``model/fpindex``: 256 B of bits + 2 B popcount + 8 B file
offset = 266 B per entry) and cached; a query then scans the packed bits only, and reads the few
winning lines back from the file itself, so names and descriptions cost no memory.

The file format (UTF-8 text, uncompressed: hits are read back by byte offset):

- ``.tsv`` / ``.tab`` / ``.txt``: tab-separated with a header row; columns found by name, case-insensitive:
  ``smiles`` (required), ``id`` or ``cid`` (required), ``name`` and ``description`` (optional); other
  columns are ignored. ChEBI-20's own files (``CID<TAB>SMILES<TAB>description``) qualify as they are.
- anything else (``.smi``, ``.smiles``, ...): one molecule per line, ``SMILES<whitespace>ID[<whitespace>NAME]``
  (the rest of the line after the id is the name).
- a row without an id is named by its position among the file's molecules (``row 12``).
- blank lines and lines starting with ``#`` are skipped; a line whose SMILES RDKit rejects is skipped
  and counted (``MoleculeDB.skipped``, the first few line numbers in ``skipped_lines``).
- ids made only of digits are taken for PubChem CIDs (linked to PubChem by ``similar_known``).

The cache is ``$BIOMEDGPT_HOME/molecule_db/<file stem>-<key>.npz``, where the key hashes the file's
absolute path, size, modification time and the fingerprint spec: editing the file, or a new spec,
makes a new cache; the write is atomic (temporary file + rename), so two processes never read half a
cache. A file that cannot be used gives one ``ConfigError`` line naming the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biomedgpt.core.chem import FP_BITS, FP_RADIUS, morgan_generator, try_parse_smiles
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.core.files import atomic_open
from biomedgpt.core.settings import get_settings
from biomedgpt.model.featurize import pool_context
from biomedgpt.model.fpindex import PackedFingerprints, top_k

CACHE_FOLDER = "molecule_db"
CACHE_VERSION = 1
SPEC = f"morgan r={FP_RADIUS} bits={FP_BITS} rdFingerprintGenerator"
TSV_SUFFIXES = (".tsv", ".tab", ".txt")
ID_COLUMNS = ("id", "cid")
#: Lines per worker task when fingerprinting in parallel; files shorter than PARALLEL_MIN_LINES use one process.
CHUNK_LINES = 5_000
PARALLEL_MIN_LINES = 10_000
SKIPPED_LINES_KEPT = 20


@dataclass(frozen=True)
class _Layout:
    """How a line splits into fields: tab columns by index (``tsv``) or whitespace (``smi``)."""

    kind: str  # "tsv" | "smi"
    smiles: int = 0
    id: int = 1
    name: int | None = None
    description: int | None = None

    def fields(self, text: str) -> tuple[str, str, str | None, str]:
        """(smiles, id or "", name, description) of one data line."""
        if self.kind == "tsv":
            cells = text.split("\t")

            def cell(i: int | None) -> str:
                return cells[i].strip() if i is not None and i < len(cells) else ""

            return cell(self.smiles), cell(self.id), cell(self.name) or None, cell(self.description)
        parts = text.split(None, 2)
        smiles = parts[0] if parts else ""
        ident = parts[1] if len(parts) > 1 else ""
        name = parts[2].strip() if len(parts) > 2 else None
        return smiles, ident, name or None, ""


def _fail(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"molecule reference {path} (BIOMEDGPT_MOLECULE_DB): {problem}")


def _layout(path: Path, header: str) -> _Layout:
    if path.suffix.lower() not in TSV_SUFFIXES:
        return _Layout("smi")
    names = [c.strip().lower() for c in header.rstrip("\r\n").split("\t")]
    found = ", ".join(repr(n) for n in names[:8]) or "none"
    if "smiles" not in names:
        raise _fail(path, f"a {path.suffix} file needs a tab-separated header row with a 'smiles' column "
                          f"(found columns: {found})")
    ident = next((names.index(c) for c in ID_COLUMNS if c in names), None)
    if ident is None:
        raise _fail(path, f"the header row has no 'id' (or 'cid') column (found columns: {found})")
    return _Layout("tsv", smiles=names.index("smiles"), id=ident,
                   name=names.index("name") if "name" in names else None,
                   description=names.index("description") if "description" in names else None)


def _data_lines(path: Path, layout: _Layout) -> Iterator[tuple[int, int, str]]:
    """(byte offset, 1-based line number, text) of each data line (header, blanks and comments skipped)."""
    offset = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            start, offset = offset, offset + len(raw)
            if number == 1 and layout.kind == "tsv":
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _fail(path, f"line {number} is not UTF-8 text ({error.reason})") from None
            stripped = text.strip()
            if stripped and not stripped.startswith("#"):
                yield start, number, text


def _fingerprint_chunk(task: tuple[str, list[tuple[int, int, str]], _Layout]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Worker: (packed rows (n, words), byte offsets of the kept lines, line numbers of rejected SMILES)."""
    from rdkit import rdBase  # deferred: RDKit

    _, lines, layout = task
    generator = morgan_generator()
    dense = np.zeros((len(lines), FP_BITS), dtype=np.uint8)
    kept_offsets: list[int] = []
    rejected: list[int] = []
    with rdBase.BlockLogs():
        for offset, number, text in lines:
            mol = try_parse_smiles(layout.fields(text)[0])
            if mol is None:
                rejected.append(number)
                continue
            dense[len(kept_offsets)] = generator.GetFingerprintAsNumPy(mol)
            kept_offsets.append(offset)
    rows = PackedFingerprints.pack_rows(dense[: len(kept_offsets)])
    return rows, np.asarray(kept_offsets, dtype=np.int64), rejected


def _chunks(path: Path, layout: _Layout) -> Iterator[tuple[str, list[tuple[int, int, str]], _Layout]]:
    batch: list[tuple[int, int, str]] = []
    for item in _data_lines(path, layout):
        batch.append(item)
        if len(batch) == CHUNK_LINES:
            yield str(path), batch, layout
            batch = []
    if batch:
        yield str(path), batch, layout


def default_workers() -> int:
    """Processes for fingerprinting a large file: every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class MoleculeDB:
    """A fingerprinted molecule reference file: packed fingerprints + the byte offset of each line."""

    def __init__(self, path: Path, layout: _Layout, fingerprints: PackedFingerprints, offsets: np.ndarray,
                 *, skipped: int = 0, skipped_lines: Iterable[int] = (), stamp: tuple[int, int] = (0, 0)) -> None:
        self.path = path
        self.layout = layout
        self.fingerprints = fingerprints
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.skipped = int(skipped)
        self.skipped_lines = list(skipped_lines)
        self.stamp = stamp  # (size, mtime_ns) of the file the cache was built from
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes held per the whole reference (fingerprints, popcounts, line offsets)."""
        return self.fingerprints.nbytes + self.offsets.nbytes

    @property
    def source(self) -> str:
        """How hits from this reference are labelled: ``molecule reference <file name>``."""
        return f"molecule reference {self.path.name}"

    # ------------------------------------------------------------------------------ rows
    def row(self, i: int):
        """Reference row ``i`` read back from the file: a ``retrieval.MoleculeRecord``."""
        from biomedgpt.model.retrieval import MoleculeRecord

        with self._lock, self.path.open("rb") as handle:
            handle.seek(int(self.offsets[i]))
            text = handle.readline().decode("utf-8")
        smiles, ident, name, description = self.layout.fields(text)
        return MoleculeRecord(ident or f"row {i + 1}", smiles, description, name)

    # ------------------------------------------------------------------------------ search
    def search(self, smiles: str, k: int = 5, *, exclude_ids: Iterable[str] = (), leave_self_out: bool = True):
        """The ``k`` most Tanimoto-similar reference rows as ``retrieval.Hit`` s, best first.

        The rules of ``MoleculeIndex.search``: with ``leave_self_out`` no row with the query's InChIKey
        is returned, and ids in ``exclude_ids`` never are. Both are checked lazily on the leading
        candidates only (their lines are parsed then), so the scan itself stays bits-only.
        """
        from biomedgpt.core.chem import parse_smiles
        from biomedgpt.model.retrieval import Hit, molecule_key, query_words

        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        mol = parse_smiles(smiles)
        if not len(self):
            return []
        scores = self.fingerprints.tanimoto(query_words(mol))
        exclude = {str(i) for i in exclude_ids}
        own_key = molecule_key(mol) if leave_self_out else None
        records: dict[int, object] = {}

        def veto(i: int) -> bool:
            record = records[i] = self.row(i)
            if record.id in exclude:
                return True
            if own_key is None:
                return False
            other = try_parse_smiles(record.smiles)
            return other is not None and molecule_key(other) == own_key

        rows = top_k(scores, k, veto if (exclude or own_key) else None)
        hits = []
        for i in rows:
            record = records.get(i) or self.row(i)
            hits.append(Hit(id=record.id, description=record.description, similarity=round(float(scores[i]), 4),
                            smiles=record.smiles, name=record.name, kind="molecule"))
        return hits

    # ------------------------------------------------------------------------------ build / cache
    @classmethod
    def build(cls, path: str | Path, *, workers: int | None = None) -> MoleculeDB:
        """Fingerprint ``path`` (every data line), in ``workers`` processes for a large file."""
        path = Path(path).expanduser().resolve()
        stamp = _check_file(path)
        with path.open("rb") as handle:
            header = handle.readline().decode("utf-8", errors="replace")
        layout = _layout(path, header)
        workers = default_workers() if workers is None else max(1, workers)
        parts: list[tuple[np.ndarray, np.ndarray, list[int]]] = []
        if workers > 1 and stamp[0] > PARALLEL_MIN_LINES * 40:  # ~40 bytes a line: only large files pay a pool
            # Workers run RDKit and numpy only; model/featurize.pool_context says why they are forked.
            with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
                parts = list(pool.map(_fingerprint_chunk, _chunks(path, layout)))
        else:
            parts = [_fingerprint_chunk(task) for task in _chunks(path, layout)]
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, FP_BITS // 64), np.uint64)
        offsets = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        rejected = [n for p in parts for n in p[2]]
        if not len(offsets):
            problem = (f"none of its {len(rejected)} SMILES could be parsed (first bad lines: "
                       f"{', '.join(map(str, rejected[:5]))}); is it a {layout.kind} file?" if rejected
                       else "it holds no molecules (only blank, comment or header lines)")
            raise _fail(path, problem)
        return cls(path, layout, PackedFingerprints.from_rows(rows, FP_BITS), offsets, skipped=len(rejected),
                   skipped_lines=rejected[:SKIPPED_LINES_KEPT], stamp=stamp)

    def save(self, target: Path) -> Path:
        """Write the cache atomically (temporary file in the same folder, then rename), uncompressed for a fast load."""
        meta = {"version": CACHE_VERSION, "spec": SPEC, "source": str(self.path), "size": self.stamp[0],
                "mtime_ns": self.stamp[1], "layout": self.layout.__dict__, "skipped": self.skipped,
                "skipped_lines": self.skipped_lines}
        with atomic_open(target) as handle:
            np.savez(handle, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
                     words=self.fingerprints.words, counts=self.fingerprints.counts, offsets=self.offsets)
        return target

    @classmethod
    def load_cache(cls, target: Path, path: Path, stamp: tuple[int, int]) -> MoleculeDB | None:
        """The cache at ``target`` if it is whole and was built from ``path`` as it is now, else ``None``."""
        try:
            with np.load(target, allow_pickle=False) as data:
                meta = json.loads(data["meta"].tobytes().decode("utf-8"))
                if (meta.get("version") != CACHE_VERSION or meta.get("spec") != SPEC
                        or (meta.get("size"), meta.get("mtime_ns")) != stamp):
                    return None
                words, counts, offsets = data["words"], data["counts"], data["offsets"]
        except (OSError, ValueError, KeyError, EOFError):
            return None  # unreadable or foreign: rebuilt and replaced
        return cls(path, _Layout(**meta["layout"]), PackedFingerprints(words, FP_BITS, counts), offsets,
                   skipped=meta.get("skipped", 0), skipped_lines=meta.get("skipped_lines", ()), stamp=stamp)


def _check_file(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a usable reference file; ``ConfigError`` naming the problem otherwise."""
    if not path.exists():
        raise _fail(path, "the file does not exist")
    if not path.is_file():
        raise _fail(path, "it is not a file")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
        stat = path.stat()
    except OSError as error:
        raise _fail(path, f"it cannot be read ({error.strerror or error})") from None
    if head[:2] == b"\x1f\x8b":
        raise _fail(path, "it is gzip-compressed; decompress it (hits are read back from the file by byte offset)")
    if b"\x00" in head:
        raise _fail(path, "it is a binary file, not SMILES text")
    if stat.st_size == 0:
        raise _fail(path, "the file is empty")
    return stat.st_size, stat.st_mtime_ns


def cache_path(path: Path, stamp: tuple[int, int]) -> Path:
    """Where the cache of ``path`` (as it is now) lives under ``BIOMEDGPT_HOME``."""
    key = hashlib.sha256(f"{path}\0{stamp[0]}\0{stamp[1]}\0{SPEC}\0{CACHE_VERSION}".encode()).hexdigest()[:16]
    return get_settings().path(CACHE_FOLDER, f"{path.stem}-{key}.npz")


_OPEN: dict[Path, MoleculeDB] = {}
_OPEN_LOCK = threading.Lock()


def open_molecule_db(path: str | Path, *, workers: int | None = None) -> MoleculeDB:
    """The reference at ``path``: from memory, else from its cache, else fingerprinted now (and cached).

    A file changed since (size or modification time) is fingerprinted again, so the index always
    answers for the file as it is.
    """
    path = Path(path).expanduser().resolve()
    stamp = _check_file(path)
    with _OPEN_LOCK:
        known = _OPEN.get(path)
        if known is not None and known.stamp == stamp:
            return known
        target = cache_path(path, stamp)
        db = MoleculeDB.load_cache(target, path, stamp) if target.is_file() else None
        if db is None:
            from biomedgpt.core.terminal import notice  # deferred: only a build speaks

            notice(f"fingerprinting the molecule reference {path} once (cached in {target.parent})")
            db = MoleculeDB.build(path, workers=workers)
            try:
                db.save(target)
            except OSError as error:  # a read-only or full home: still answer, fingerprint again next time
                notice(f"could not cache the molecule reference in {target} ({error.strerror or error})")
        _OPEN[path] = db
        return db


def configured_molecule_db() -> MoleculeDB | None:
    """The reference named by ``BIOMEDGPT_MOLECULE_DB`` (setting ``molecule_db``), or ``None`` when unset."""
    value = get_settings().molecule_db
    if not value or not str(value).strip():
        return None
    return open_molecule_db(str(value).strip())

