"""Reference indexes of known molecules and proteins: ``default_molecule_index().search("CCO", k=5)``.

Why: a structure the model has never seen is best explained next to the nearest structures whose
descriptions are known. Training (retrieval-augmented prompts), evaluation and the ``similar_known``
tool all use this module, so it is pure code: no network, no imports from ``tools/``.

- ``MoleculeIndex``: Morgan fingerprints (radius 2, 2048 bits, RDKit ``rdFingerprintGenerator``),
  packed into ``uint64`` words (``model/fpindex``); Tanimoto by popcount, equal to RDKit's
  ``BulkTanimotoSimilarity``, top k by ``argpartition``.
- ``ProteinIndex``: 3-mer count profiles, **cosine** similarity (a sparse matrix product; sequences
  that share many tripeptides score close to 1). It finds close homologs quickly; it is not an
  alignment score.
- Leave-self-out: a query never retrieves a reference with the same InChIKey (molecules) or an
  identical sequence (proteins); ids in ``exclude_ids`` (e.g. the query's own CID or accession) are
  always excluded. This keeps evaluation honest: an answer cannot be copied from the query itself.
- Shipped data (``model/data/``, see its README): molecules = every ChEBI-20 row (validation and test,
  6,101; an evaluation holds the rows it scores out with ``exclude_ids``: ``model/prompts.held_out_ids``);
  proteins = the Swiss-Prot PAIR set, whose shipped index holds only the 80 % train split of
  ``core/datasets.split_accessions(..., test_fraction=0.2, seed=0)``.

The shipped files are built by ``scripts/build_references.py`` (a maintainer's script that imports
this library); this module only loads and searches them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from biomedgpt.core.chem import AMINO_ACIDS as ALL_AMINO_ACIDS
from biomedgpt.core.chem import FP_BITS, FP_RADIUS, STANDARD_AMINO_ACIDS, morgan_generator, parse_smiles
from biomedgpt.core.datasets import ProteinRecord, read_chebi20, read_swissprot_pair, split_accessions
from biomedgpt.core.errors import InputError, InvalidSequenceError, InvalidSmilesError
from biomedgpt.core.files import atomic_write_bytes
from biomedgpt.model.fpindex import PackedFingerprints, top_k

DATA_DIR = Path(__file__).resolve().parent / "data"
MOLECULE_RECORDS = DATA_DIR / "chebi20.tsv.gz"
PROTEIN_RECORDS = DATA_DIR / "swissprot_pair.csv.gz"
MOLECULE_INDEX = DATA_DIR / "chebi20.index.npz"
PROTEIN_INDEX = DATA_DIR / "swissprot_train.index.npz"

KMER = 3
#: The column order of the 3-mer profile in the shipped protein index files: ``core.chem``'s letters
#: (the 20 standard amino acids, then B Z X U O). Changing the order invalidates every index file.
AMINO_ACIDS = STANDARD_AMINO_ACIDS + "BZXUO"
assert frozenset(AMINO_ACIDS) == ALL_AMINO_ACIDS
_AA_INDEX = {aa: i for i, aa in enumerate(AMINO_ACIDS)}
MAX_SEQUENCE_LENGTH = 100_000
_FORMAT_VERSION = 1


class MoleculeRecord(NamedTuple):
    """One reference molecule: ``(id, smiles, description[, name])`` (id: PubChem CID for ChEBI-20)."""

    id: str
    smiles: str
    description: str
    name: str | None = None


@dataclass(frozen=True)
class Hit:
    """A retrieved reference. ``similarity`` is Tanimoto (molecules) or 3-mer cosine (proteins), in [0, 1]."""

    id: str
    description: str
    similarity: float
    smiles: str | None = None
    sequence: str | None = None
    name: str | None = None
    kind: str = "molecule"

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------- I/O



def _save_npz(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _load_npz(path: Path, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} index file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise InputError(f"{kind} index file {path} is unreadable ({error}); rebuild it with .build() and .save()") from error
    if meta.get("kind") != kind or meta.get("version") != _FORMAT_VERSION:
        raise InputError(f"{path} is not a version-{_FORMAT_VERSION} {kind} index (found {meta.get('kind')!r}, "
                         f"version {meta.get('version')!r})")
    return meta, arrays


def file_digest(path: Path) -> str:
    """The sha256 of a file: an index stores its source file's, and is stale when they differ."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------- molecules


def molecule_key(mol) -> str:
    """The identity used by leave-self-out: the standard InChIKey (canonical SMILES if InChI fails)."""
    from rdkit import Chem  # deferred: RDKit costs ~0.2 s to import

    key = Chem.MolToInchiKey(mol) or ""
    return key or "smiles:" + Chem.MolToSmiles(mol)


def query_words(mol) -> np.ndarray:
    """The project's fingerprint (``core.chem.morgan_generator``) of a parsed molecule, packed as
    ``PackedFingerprints`` rows are."""
    return PackedFingerprints.pack_one(morgan_generator().GetFingerprint(mol))


class MoleculeIndex:
    """Morgan-fingerprint (r=2, 2048 bits) Tanimoto index over reference molecules with descriptions.

    The fingerprints are held packed (``model/fpindex.PackedFingerprints``: 258 B per entry, a query
    scans only the words its own bits touch); scores equal RDKit's ``BulkTanimotoSimilarity``.
    """

    def __init__(self, records: Sequence[MoleculeRecord], inchikeys: Sequence[str],
                 fingerprints: Sequence | PackedFingerprints, *, skipped: Sequence[str] = ()) -> None:
        if not isinstance(fingerprints, PackedFingerprints):
            fingerprints = PackedFingerprints.from_rdkit(list(fingerprints), FP_BITS)
        if not (len(records) == len(inchikeys) == len(fingerprints)):
            raise ValueError("records, inchikeys and fingerprints must have the same length")
        self.records = list(records)
        self.inchikeys = list(inchikeys)
        self.fingerprints = fingerprints
        self.skipped = list(skipped)  # ids of reference rows whose SMILES RDKit rejected
        self._by_id: dict[str, list[int]] = {}
        for i, record in enumerate(self.records):
            self._by_id.setdefault(record.id, []).append(i)
        self._by_key: dict[str, list[int]] = {}
        for i, key in enumerate(self.inchikeys):
            self._by_key.setdefault(key, []).append(i)

    def __len__(self) -> int:
        return len(self.records)

    @staticmethod
    def _generator():
        return morgan_generator()

    @classmethod
    def build(cls, records: Iterable[Sequence[str]], *, strict: bool = False) -> MoleculeIndex:
        """Index ``(id, smiles, description[, name])`` rows. Unparseable SMILES are skipped and listed in
        ``.skipped`` (``strict=True`` raises ``InvalidSmilesError`` naming the row instead)."""
        generator = cls._generator()
        kept, keys, fps, skipped = [], [], [], []
        for row in records:
            record = MoleculeRecord(*row)
            try:
                mol = parse_smiles(record.smiles)
            except InvalidSmilesError as error:
                if strict:
                    raise InvalidSmilesError(f"reference molecule {record.id}: {error}") from error
                skipped.append(str(record.id))
                continue
            kept.append(MoleculeRecord(str(record.id), record.smiles, record.description, record.name))
            keys.append(molecule_key(mol))
            fps.append(generator.GetFingerprint(mol))
        return cls(kept, keys, fps, skipped=skipped)

    def search(self, smiles: str, k: int = 5, *, exclude_ids: Iterable[str] = (),
               leave_self_out: bool = True) -> list[Hit]:
        """The ``k`` most Tanimoto-similar references, best first.

        With ``leave_self_out`` (the default) no reference with the query's InChIKey is returned, so a
        different spelling of the same molecule is excluded too; ids in ``exclude_ids`` never are.
        """
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        mol = parse_smiles(smiles)
        if not self.records:
            return []
        sims = self.fingerprints.tanimoto(query_words(mol))
        own = self._by_key.get(molecule_key(mol), ()) if leave_self_out else ()
        return [self._hit(i, sims[i]) for i in _best(sims, k, self._by_id, exclude_ids, own)]

    def _hit(self, i: int, similarity: float) -> Hit:
        record = self.records[i]
        return Hit(id=record.id, description=record.description, similarity=round(float(similarity), 4),
                   smiles=record.smiles, name=record.name, kind="molecule")

    def same_as(self, rows: Iterable[tuple[str, str]]) -> set[str]:
        """The ids of ``rows`` (``(id, SMILES)``) and of every reference that is one of their molecules under
        another id (same InChIKey); a SMILES RDKit cannot read contributes its id only."""
        ids: set[str] = set()
        for ident, smiles in rows:
            ids.add(str(ident))
            try:
                key = molecule_key(parse_smiles(smiles))
            except InvalidSmilesError:
                continue
            ids.update(self.records[i].id for i in self._by_key.get(key, ()))
        return ids

    # Saved as on-bit lists (ragged: offsets + indices) plus the records as JSON, in one npz.
    def save(self, path: str | Path, *, source_digest: str | None = None, **extra_meta) -> Path:
        """Write the index atomically to ``path`` (an ``.npz``); ``load`` reads it back without RDKit parsing."""
        offsets, indices = self.fingerprints.to_onbits()
        meta = {"kind": "molecule", "version": _FORMAT_VERSION, "radius": FP_RADIUS, "bits": FP_BITS,
                "records": [list(r) for r in self.records], "inchikeys": self.inchikeys,
                "skipped": self.skipped, "source_digest": source_digest, **extra_meta}
        _save_npz(Path(path), meta, {"offsets": offsets, "onbits": indices})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> MoleculeIndex:
        meta, arrays = _load_npz(Path(path), "molecule")
        if meta.get("radius") != FP_RADIUS or meta.get("bits") != FP_BITS:
            raise InputError(f"{path} uses radius {meta.get('radius')} / {meta.get('bits')} bits, "
                             f"expected {FP_RADIUS} / {FP_BITS}")
        fps = PackedFingerprints.from_onbits(arrays["offsets"], arrays["onbits"], FP_BITS)
        records = [MoleculeRecord(*r) for r in meta["records"]]
        index = cls(records, meta["inchikeys"], fps, skipped=meta.get("skipped", ()))
        index.source_digest = meta.get("source_digest")
        return index


# ---------------------------------------------------------------------------------------- proteins


def normalize_sequence(sequence: str) -> str:
    """Upper-case, whitespace removed; ``InvalidSequenceError`` names any letter that is not an amino acid."""
    if not isinstance(sequence, str):
        raise InvalidSequenceError(f"invalid protein sequence {sequence!r}: not a string")
    seq = re.sub(r"\s+", "", sequence).upper()
    if seq.endswith("*"):
        seq = seq[:-1]
    if not seq:
        raise InvalidSequenceError("invalid protein sequence '': empty")
    bad = sorted({c for c in seq if c not in _AA_INDEX})
    if bad:
        shown = sequence if len(sequence) <= 40 else sequence[:37] + "..."
        raise InvalidSequenceError(f"invalid protein sequence {shown!r}: {', '.join(map(repr, bad))} "
                                   "is not an amino-acid letter")
    if len(seq) > MAX_SEQUENCE_LENGTH:
        raise InvalidSequenceError(f"protein sequence of {len(seq)} residues is longer than {MAX_SEQUENCE_LENGTH}")
    return seq


def _kmer_codes(seq: str, k: int = KMER) -> np.ndarray:
    base = len(AMINO_ACIDS)
    codes = np.fromiter((_AA_INDEX[c] for c in seq), dtype=np.int64, count=len(seq))
    if len(codes) < k:
        return np.zeros(0, dtype=np.int64)
    out = np.zeros(len(codes) - k + 1, dtype=np.int64)
    for offset in range(k):
        out = out * base + codes[offset:len(codes) - k + 1 + offset]
    return out


def _profile_matrix(sequences: Sequence[str]):
    """Rows: L2-normalised 3-mer count vectors (scipy CSR, float32)."""
    from scipy import sparse  # deferred: only the protein index needs scipy

    dim = len(AMINO_ACIDS) ** KMER
    rows, cols, vals = [], [], []
    for r, seq in enumerate(sequences):
        uniq, counts = np.unique(_kmer_codes(seq), return_counts=True)
        if len(uniq):
            weights = counts.astype(np.float64)
            weights /= np.linalg.norm(weights)
            rows.append(np.full(len(uniq), r, dtype=np.int64))
            cols.append(uniq)
            vals.append(weights)
    if rows:
        matrix = sparse.csr_matrix((np.concatenate(vals).astype(np.float32),
                                    (np.concatenate(rows), np.concatenate(cols))), shape=(len(sequences), dim))
    else:
        matrix = sparse.csr_matrix((len(sequences), dim), dtype=np.float32)
    return matrix


def _sequence_digest(seq: str) -> str:
    return hashlib.sha1(seq.encode("ascii")).hexdigest()


class ProteinIndex:
    """3-mer profile cosine index over reference proteins with descriptions."""

    def __init__(self, records: Sequence[ProteinRecord], matrix) -> None:
        self.records = list(records)
        self._matrix = matrix.tocsr()
        self._by_id: dict[str, list[int]] = {}
        self._by_seq: dict[str, list[int]] = {}
        for i, record in enumerate(self.records):
            self._by_id.setdefault(record.accession, []).append(i)
            self._by_seq.setdefault(_sequence_digest(record.sequence), []).append(i)

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def build(cls, records: Iterable[Sequence[str]]) -> ProteinIndex:
        """Index ``(accession, sequence, description[, name])`` rows; a bad sequence raises naming the accession."""
        kept = []
        for row in records:
            record = ProteinRecord(*row)
            try:
                seq = normalize_sequence(record.sequence)
            except InvalidSequenceError as error:
                raise InvalidSequenceError(f"reference protein {record.accession}: {error}") from error
            kept.append(ProteinRecord(str(record.accession), seq, record.description, record.name))
        return cls(kept, _profile_matrix([r.sequence for r in kept]))

    def search(self, sequence: str, k: int = 5, *, exclude_ids: Iterable[str] = (),
               leave_self_out: bool = True) -> list[Hit]:
        """The ``k`` references with the most similar 3-mer profile (cosine), best first.

        With ``leave_self_out`` an identical sequence is never returned; accessions in ``exclude_ids``
        (e.g. the query's own accession) never are.
        """
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}")
        seq = normalize_sequence(sequence)
        if not self.records:
            return []
        query = _profile_matrix([seq])
        sims = np.asarray((self._matrix @ query.T).todense()).ravel().astype(np.float64)
        own = self._by_seq.get(_sequence_digest(seq), ()) if leave_self_out else ()
        return [self._hit(i, sims[i]) for i in _best(sims, k, self._by_id, exclude_ids, own)]

    def same_as(self, rows: Iterable[tuple[str, str]]) -> set[str]:
        """The ids of ``rows`` (``(accession, sequence)``) and of every reference with one of their sequences
        under another accession; a sequence that is not one contributes its id only."""
        ids: set[str] = set()
        for ident, sequence in rows:
            ids.add(str(ident))
            try:
                digest = _sequence_digest(normalize_sequence(sequence))
            except InvalidSequenceError:
                continue
            ids.update(self.records[i].accession for i in self._by_seq.get(digest, ()))
        return ids

    def _hit(self, i: int, similarity: float) -> Hit:
        record = self.records[i]
        return Hit(id=record.accession, description=record.description,
                   similarity=round(min(1.0, float(similarity)), 4), sequence=record.sequence,
                   name=record.name, kind="protein")

    def save(self, path: str | Path, *, source_digest: str | None = None, **extra_meta) -> Path:
        """Write the index atomically to ``path`` (an ``.npz``)."""
        m = self._matrix
        meta = {"kind": "protein", "version": _FORMAT_VERSION, "k": KMER, "alphabet": AMINO_ACIDS,
                "records": [list(r) for r in self.records], "source_digest": source_digest, **extra_meta}
        _save_npz(Path(path), meta, {"data": m.data, "indices": m.indices.astype(np.int32),
                                     "indptr": m.indptr.astype(np.int64)})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> ProteinIndex:
        from scipy import sparse  # deferred: only the protein index needs scipy

        meta, arrays = _load_npz(Path(path), "protein")
        if meta.get("k") != KMER or meta.get("alphabet") != AMINO_ACIDS:
            raise InputError(f"{path} was built with k={meta.get('k')} and another alphabet; rebuild it")
        records = [ProteinRecord(*r) for r in meta["records"]]
        matrix = sparse.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]),
                                   shape=(len(records), len(AMINO_ACIDS) ** KMER))
        index = cls(records, matrix)
        index.source_digest = meta.get("source_digest")
        index.meta = {k: v for k, v in meta.items() if k != "records"}
        return index


def _best(sims: np.ndarray, k: int, by_id: dict, exclude_ids: Iterable[str], own_rows: Iterable[int]) -> list[int]:
    """The one exclusion rule of both indexes: the rows of ``exclude_ids`` and the query's own rows (``own_rows``:
    the same molecule or sequence) are left out; then the ``k`` best, as ``_top_k``."""
    banned = [row for ident in exclude_ids for row in by_id.get(str(ident), ())]
    banned.extend(own_rows)
    if banned:
        sims[banned] = -1.0
    return _top_k(sims, k)


def _top_k(sims: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest non-excluded scores (excluded ones are set to -1), best first; ties by
    position (``model/fpindex.top_k``: argpartition, not a full sort)."""
    return top_k(sims, k)


# ------------------------------------------------------------------------------------------ prompts

_KIND_TEXT = {
    "molecule": ("Similar known molecules and their descriptions:", "Tanimoto"),
    "protein": ("Similar known proteins and their descriptions:", "3-mer cosine"),
}


def _truncate(text: str, max_chars: int) -> str:
    text = " ".join(str(text).split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def format_context(hits: Sequence[Hit], kind: str, *, max_chars: int = 200, max_hits: int | None = None,
                   nearest_max_chars: int = 1200) -> str:
    """The prompt block about the nearest known entries.

    Several hits make a numbered list, descriptions truncated to ``max_chars`` at a word boundary::

        Similar known molecules and their descriptions:
        1. CID 2244 (Tanimoto 0.82): The molecule is a member of the class of benzoic acids…

    One hit (``max_hits=1``, the mini model's ``retrieval.k``) is described in full (up to
    ``nearest_max_chars``) with no list layout, because a small LM copies a list's numbering and ids
    into its answer, while a single description is something to edit::

        The most similar known molecule (Tanimoto 0.82) is described as:
        The molecule is a member of the class of benzoic acids…

    With no hits the result is ``""`` (no empty heading in a prompt).
    """
    if kind not in _KIND_TEXT:
        raise InputError(f"kind must be 'molecule' or 'protein', got {kind!r}")
    heading, metric = _KIND_TEXT[kind]
    chosen = list(hits)[: max_hits] if max_hits else list(hits)
    if not chosen:
        return ""
    if len(chosen) == 1:
        hit = chosen[0]
        return (f"The most similar known {kind} ({metric} {hit.similarity:.2f}) is described as:\n"
                f"{_truncate(hit.description, nearest_max_chars)}")
    lines = [heading]
    for n, hit in enumerate(chosen, 1):
        label = f"CID {hit.id}" if kind == "molecule" and str(hit.id).isdigit() else str(hit.id)
        if hit.name:
            label += f" {hit.name}"
        lines.append(f"{n}. {label} ({metric} {hit.similarity:.2f}): {_truncate(hit.description, max_chars)}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ shipped data


def reference_molecules() -> list[MoleculeRecord]:
    """The shipped molecule reference: every ChEBI-20 row, validation then test (6,101 rows; see
    ``model/data/README.md``), read strictly: the index holds exactly the rows of its file."""
    return [MoleculeRecord(r.cid, r.smiles, r.description) for r in read_chebi20(MOLECULE_RECORDS, strict=True)]


def reference_proteins(split: str = "all") -> list[ProteinRecord]:
    """The shipped Swiss-Prot PAIR proteins; ``split`` is ``"all"``, ``"train"`` (80 %) or ``"test"`` (20 %)
    of ``split_accessions(accessions, 0.2, seed=0)``. ``"train"`` also leaves out any entry whose sequence
    is identical to a test entry's. The shipped index holds ``"train"`` only."""
    records = list(read_swissprot_pair(PROTEIN_RECORDS, strict=True))
    if split == "all":
        return records
    if split not in ("train", "test"):
        raise InputError(f"split must be 'all', 'train' or 'test', got {split!r}")
    train, test = split_accessions([r.accession for r in records], test_fraction=0.2, seed=0)
    test_set = set(test)
    if split == "test":
        return [r for r in records if r.accession in test_set]
    # A few entries share a sequence under different accessions (short toxins): such a train entry
    # would hand the test protein its own answer, so it is dropped from the train side too.
    test_sequences = {r.sequence for r in records if r.accession in test_set}
    return [r for r in records if r.accession not in test_set and r.sequence not in test_sequences]


def _shipped_index(kind: type, index_path: Path, records_path: Path, build: Callable[[], object]):
    """The index file at ``index_path`` when it was built from ``records_path`` as it is now, else ``build()``."""
    if index_path.is_file():
        index = kind.load(index_path)
        if index.source_digest == file_digest(records_path):
            return index
    return build()


@lru_cache(maxsize=1)
def default_molecule_index() -> MoleculeIndex:
    """The shipped ChEBI-20 index (loaded once; rebuilt in memory if the file is stale)."""
    return _shipped_index(MoleculeIndex, MOLECULE_INDEX, MOLECULE_RECORDS,
                          lambda: MoleculeIndex.build(reference_molecules()))


@lru_cache(maxsize=1)
def default_protein_index() -> ProteinIndex:
    """The shipped Swiss-Prot index of the 80 % train split (loaded once; rebuilt if stale)."""
    return _shipped_index(ProteinIndex, PROTEIN_INDEX, PROTEIN_RECORDS,
                          lambda: ProteinIndex.build(reference_proteins("train")))
