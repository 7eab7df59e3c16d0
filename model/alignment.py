"""Protein homologues by alignment (HMMER's phmmer via pyhmmer): ``search_homologues("MKT...", k=5)`` →
``[AlignmentHit(id, evalue, identity, coverage, ...)]``, or ``open_protein_fasta("uniprot_sprot.fasta").search(...)``.

Why: the shipped 3-mer cosine (``model/retrieval.ProteinIndex``) scores unrelated proteins 0.05-0.15 and
says nothing about significance; an alignment's E-value does. A hit is evidence only when its E-value
is at most ``protein_max_evalue`` (``BIOMEDGPT_PROTEIN_MAX_EVALUE``, default 1e-5); the caller decides
that, this module reports every hit phmmer reports (its default E <= 10) with:

- ``evalue``: phmmer's per-sequence E-value, over the whole search space (``Z`` = all target sequences of
  every database searched, so hits from the shipped reference and from a user file compare);
- ``identity``: identical residues / aligned columns (gaps included) of the hit's included domains
  (the best domain when none is included);
- ``coverage``: the fraction of the query's residues covered by those domains' alignments.

Databases: the shipped Swiss-Prot reference (the sequences of ``model/data/swissprot_train.index.npz``,
the same 900 train-split proteins the 3-mer index and evaluation use) and, when the setting
``protein_db`` (``BIOMEDGPT_PROTEIN_DB``) names a FASTA file, that file as well (the full Swiss-Prot
``uniprot_sprot.fasta`` for real use). Each database is digitized once per process and cached in memory,
keyed by the file's absolute path, size and modification time (a changed file is read again). No on-disk
cache: easel's C reader parses FASTA at disk speed, so a cache file would save little (measured in
``model/cards/mini.md``). A file that cannot be used gives one ``ConfigError`` line naming it and the problem.

Model-side code (training, evaluation) imports this; it imports only ``core`` and ``model``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from biomedgpt.core.datasets import ProteinRecord
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.core.settings import get_settings

SHIPPED_SOURCE = "Swiss-Prot reference"
#: phmmer's own reporting threshold: hits up to this E-value are reported (and judged by the caller).
REPORT_EVALUE = 10.0
_MAX_CACHED_FILES = 2


@dataclass(frozen=True)
class AlignmentHit:
    """One target phmmer aligned to the query. ``identity`` and ``coverage`` are fractions in [0, 1]."""

    id: str
    description: str
    sequence: str
    evalue: float
    bitscore: float
    identity: float
    coverage: float
    source: str
    name: str | None = None

    @property
    def identical(self) -> bool:
        """The query itself: every query residue aligned, all identical."""
        return self.identity >= 0.9995 and self.coverage >= 0.9995

    def to_dict(self) -> dict:
        return asdict(self)


def _pyhmmer():
    import pyhmmer  # deferred: only protein searches need HMMER (~0.1 s to import)

    return pyhmmer


@lru_cache(maxsize=1)
def _alphabet():
    return _pyhmmer().easel.Alphabet.amino()


_SWISSPROT_HEADER = re.compile(r"^(?:sp|tr)\|([^|]+)\|(\S+)$")


def _fasta_identity(name: str, description: str) -> tuple[str, str | None, str]:
    """(id, name, description) of a FASTA header: UniProt's ``sp|P69905|HBA_HUMAN Hemoglobin subunit alpha OS=...``
    gives the accession, the protein name (before ``OS=``) and the whole line; any other header its first word."""
    match = _SWISSPROT_HEADER.match(name)
    protein = description.split(" OS=", 1)[0].strip() or None
    if match:
        return match.group(1), protein, description or match.group(2)
    return name, protein, description


class ProteinDatabase:
    """A digitized block of target sequences (named by position, so duplicate FASTA names are harmless) and,
    per position, the id, name and description a hit reports."""

    def __init__(self, block, ids: Sequence[str], names: Sequence[str | None], descriptions: Sequence[str],
                 source: str, sequences: Sequence[str] | None = None) -> None:
        self.block = block
        self.ids = list(ids)
        self.names = list(names)
        self.descriptions = list(descriptions)
        self.source = source
        self._sequences = list(sequences) if sequences is not None else None  # text kept only when at hand

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Iterable[ProteinRecord], source: str = SHIPPED_SOURCE) -> ProteinDatabase:
        """Targets from ``(accession, sequence, description[, name])`` rows (the shipped reference, a training split)."""
        easel = _pyhmmer().easel
        alphabet = _alphabet()
        records = [ProteinRecord(*r) for r in records]
        sequences = [easel.TextSequence(name=str(i), sequence=r.sequence).digitize(alphabet)
                     for i, r in enumerate(records)]
        return cls(easel.DigitalSequenceBlock(alphabet, sequences), [r.accession for r in records],
                   [r.name for r in records], [r.description for r in records], source,
                   [r.sequence for r in records])

    @classmethod
    def from_fasta(cls, path: str | Path, source: str | None = None) -> ProteinDatabase:
        """Read a protein FASTA file; any problem is one ``ConfigError`` naming the file."""
        easel = _pyhmmer().easel
        path = Path(path).expanduser()
        where = f"protein_db file {path}"
        if not path.is_file():
            raise ConfigError(f"{where} does not exist or is not a file (BIOMEDGPT_PROTEIN_DB)")
        try:
            with easel.SequenceFile(str(path), format="fasta") as handle:
                guessed = handle.guess_alphabet()
            if guessed is not None and not guessed.is_amino():
                raise ConfigError(f"{where} holds nucleotide sequences; protein homology search needs protein FASTA")
            with easel.SequenceFile(str(path), digital=True, alphabet=_alphabet(), format="fasta") as handle:
                block = handle.read_block()
        except ConfigError:
            raise
        except EOFError:
            raise ConfigError(f"{where} is empty: no FASTA records") from None
        except (ValueError, OSError) as error:  # easel: "Could not parse file: Line 2: illegal character 1"
            raise ConfigError(f"{where} is not valid protein FASTA: {error}") from None
        if not len(block):
            raise ConfigError(f"{where} holds no FASTA records")
        ids, names, descriptions = [], [], []
        for i, sequence in enumerate(block):
            header = sequence.name
            if not len(sequence):
                raise ConfigError(f"{where} is not valid protein FASTA: record {header!r} (number {i + 1}) has no residues")
            ident, name, description = _fasta_identity(header, sequence.description)
            ids.append(ident)
            names.append(name)
            descriptions.append(description)
            sequence.name = str(i)
        return cls(block, ids, names, descriptions, source or f"BIOMEDGPT_PROTEIN_DB {path.name}")

    def sequence(self, i: int) -> str:
        if self._sequences is not None:
            return self._sequences[i]
        return self.block[i].textize().sequence

    def search(self, sequence: str, *, evalue: float = REPORT_EVALUE, z: int | None = None) -> list[AlignmentHit]:
        """Every target phmmer reports for ``sequence`` (normalized upper-case letters) up to ``evalue``,
        best (lowest E-value) first; ``z`` is the search-space size for E-values (default: this database's)."""
        return _search([sequence], self, evalue=evalue, z=z)[0]


def _search(queries: Sequence[str], database: ProteinDatabase, *, evalue: float, z: int | None) -> list[list[AlignmentHit]]:
    pyhmmer = _pyhmmer()
    alphabet = _alphabet()
    digital = [pyhmmer.easel.TextSequence(name=f"q{i}", sequence=q).digitize(alphabet) for i, q in enumerate(queries)]
    options = {"E": evalue, "Z": z or len(database)}
    results = []
    for query, top_hits in zip(queries, pyhmmer.hmmer.phmmer(digital, database.block, cpus=1, **options)):
        hits = [_hit(database, hit, len(query)) for hit in top_hits if hit.reported]
        hits.sort(key=lambda h: (h.evalue, -h.bitscore))
        results.append(hits)
    return results


def _hit(database: ProteinDatabase, hit, query_length: int) -> AlignmentHit:
    i = int(hit.name)
    domains = [d for d in hit.domains if d.included and d.reported] or [hit.best_domain]
    identical = columns = 0
    covered: set[int] = set()
    for domain in domains:
        alignment = domain.alignment
        identical += sum(1 for c in alignment.identity_sequence if c.isalpha())
        columns += len(alignment.identity_sequence)
        covered.update(range(alignment.hmm_from, alignment.hmm_to + 1))  # phmmer: the query is the "HMM"
    return AlignmentHit(id=database.ids[i], name=database.names[i], description=database.descriptions[i],
                        sequence=database.sequence(i), evalue=float(hit.evalue), bitscore=float(hit.score),
                        identity=round(identical / columns, 4) if columns else 0.0,
                        coverage=round(min(1.0, len(covered) / query_length), 4), source=database.source)


# ---------------------------------------------------------------------------------------- databases


@lru_cache(maxsize=1)
def shipped_database() -> ProteinDatabase:
    """The shipped Swiss-Prot reference (the 3-mer index's records: the 80 % train split), digitized once."""
    from biomedgpt.model.retrieval import default_protein_index  # deferred: scipy loads with the index

    return ProteinDatabase.from_records(default_protein_index().records)


_FILES: dict[tuple[str, int, int], ProteinDatabase] = {}
_FILES_LOCK = threading.Lock()


def open_protein_fasta(path: str | Path) -> ProteinDatabase:
    """The FASTA file at ``path`` as a database, read once per process while its size and mtime stay the same."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = resolved.stat()
    except OSError:
        raise ConfigError(f"protein_db file {path} does not exist or is not a file (BIOMEDGPT_PROTEIN_DB)") from None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns)
    with _FILES_LOCK:
        cached = _FILES.get(key)
        if cached is not None:
            return cached
        database = ProteinDatabase.from_fasta(resolved)
        for old in [k for k in _FILES if k[0] == key[0]]:  # an older version of the same file
            del _FILES[old]
        while len(_FILES) >= _MAX_CACHED_FILES:  # oldest first (dicts keep insertion order)
            del _FILES[next(iter(_FILES))]
        _FILES[key] = database
        return database


def configured_databases(settings=None) -> list[ProteinDatabase]:
    """The shipped reference, then the ``protein_db`` FASTA when the setting names one."""
    settings = settings or get_settings()
    databases = [shipped_database()]
    value = (settings.protein_db or "").strip()
    if value:
        databases.append(open_protein_fasta(value))
    return databases


def search_homologues(sequence: str, k: int = 5, *, databases: Sequence[ProteinDatabase] | None = None,
                      exclude_ids: Iterable[str] = (), leave_self_out: bool = False,
                      settings=None) -> list[AlignmentHit]:
    """The ``k`` best-scoring hits (lowest E-value) for a protein ``sequence`` over ``databases`` (default:
    ``configured_databases()``), E-values over the combined size of all of them. Not filtered by
    ``protein_max_evalue``: the caller judges evidence. An id found in two databases is kept once (the
    first database's, whose description is richer for the shipped reference). ``leave_self_out`` drops
    targets whose sequence equals the query; ids in ``exclude_ids`` are always dropped."""
    from biomedgpt.model.retrieval import normalize_sequence  # the one sequence check of the project

    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    query = normalize_sequence(sequence)
    databases = list(databases) if databases is not None else configured_databases(settings)
    z = sum(len(d) for d in databases) or 1
    exclude = {str(i) for i in exclude_ids}
    seen: set[str] = set()
    found: list[AlignmentHit] = []
    for database in databases:
        for hit in database.search(query, z=z):
            if hit.id in exclude or hit.id in seen or (leave_self_out and hit.sequence == query):
                continue
            seen.add(hit.id)
            found.append(hit)
    found.sort(key=lambda h: (h.evalue, -h.bitscore))
    return found[:k]


def clear_cache() -> None:
    """Forget the digitized FASTA files (tests; a long-lived process that wants memory back)."""
    with _FILES_LOCK:
        _FILES.clear()


__all__ = ["AlignmentHit", "ProteinDatabase", "REPORT_EVALUE", "SHIPPED_SOURCE", "clear_cache", "configured_databases",
           "open_protein_fasta", "search_homologues", "shipped_database"]
