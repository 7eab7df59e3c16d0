"""Training data assembly for alignment: ``molecule_split(config)``, ``protein_split(config)``, ``protein_references(...)``.

Why here: the data-set readers are the ground floor's (``core/datasets.py``, shared with evaluation,
the reference indexes and the benchmarks); what is specific to training is how the rows read are
split and which of them may serve as retrieval references. All splits are deterministic:

- molecules: the rows of ``data.molecule_paths`` (ChEBI-20 validation and test in the mini recipe; a CID
  read twice keeps its first row); rows that are an evaluation-slice molecule (``data.eval_slice``: the
  first ``rows`` rows of a file, the ones ``eval captioning --limit`` scores; same CID or InChIKey) and
  rows whose CID is in ``data.exclude_ids`` are dropped first; then ``data.molecule_dev_holdout`` CIDs
  (``random.Random(split_seed)`` over the sorted CIDs) are kept out as a dev set, and a training row
  that is a dev molecule under another CID (same InChIKey) is dropped too; the rest train;
- proteins: ``core/datasets.split_accessions(..., test_fraction=1 - protein_train_fraction,
  seed=split_seed)`` — with 0.8 / seed 0 exactly the split whose train part the shipped protein index
  holds, so training and evaluation see the same held-out accessions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from biomedgpt.core.datasets import (
    CaptionRecord, ProteinQA, ProteinRecord, ReadStats, read_chebi20, read_uniprotqa, split_accessions, take,
)
from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.core.errors import ConfigError
from biomedgpt.model.retrieval import molecule_key, reference_proteins
from biomedgpt.training.config import AlignConfig


def molecule_split(config: AlignConfig) -> tuple[list[CaptionRecord], list[CaptionRecord]]:
    """(train, dev) ChEBI-20 rows of ``data.molecule_paths`` (both empty when none is set); module doc."""
    data = config.data
    if not data.molecule_paths:
        return [], []
    records = list(take(read_molecule_files(data.molecule_paths), data.limit_molecules))
    keys = molecule_keys(records)
    if data.eval_slice is not None:
        records = without_molecules(records, eval_slice_rows(data.eval_slice.path, data.eval_slice.rows), keys)
    if data.exclude_ids:
        excluded = set(data.exclude_ids)
        records = [r for r in records if r.cid not in excluded]
    cids = sorted({r.cid for r in records})
    random.Random(data.split_seed).shuffle(cids)
    dev_cids = set(cids[: min(data.molecule_dev_holdout, max(len(cids) - 1, 0))])
    dev = [r for r in records if r.cid in dev_cids]
    dev_keys = {keys[r.cid] for r in dev} - {None}  # a dev molecule never trains under another CID either
    train = [r for r in records if r.cid not in dev_cids and keys[r.cid] not in dev_keys]
    return train, dev


def read_molecule_files(paths: Sequence[Path]) -> Iterator[CaptionRecord]:
    """The rows of every ChEBI-20 file in order; a CID already read keeps its first row."""
    seen: set[str] = set()
    for path in paths:
        for record in read_chebi20(path, stats=ReadStats()):
            if record.cid not in seen:
                seen.add(record.cid)
                yield record


def eval_slice_rows(path: Path, rows: int | None = None) -> list[CaptionRecord]:
    """The first ``rows`` rows of a ChEBI-20 file (all when None): the rows ``eval captioning --limit`` scores."""
    return list(take(read_chebi20(path, stats=ReadStats()), rows))


def molecule_keys(records: Sequence[CaptionRecord]) -> dict[str, str | None]:
    """``{CID: InChIKey}`` (``model/retrieval.molecule_key``; None when RDKit cannot read the SMILES)."""
    keys: dict[str, str | None] = {}
    for r in records:
        mol = try_parse_smiles(r.smiles)
        keys[r.cid] = molecule_key(mol) if mol is not None else None
    return keys


def without_molecules(records: list[CaptionRecord], held_out: Sequence[CaptionRecord],
                      keys: dict[str, str | None] | None = None) -> list[CaptionRecord]:
    """``records`` minus every row that is a ``held_out`` molecule: the same CID or the same InChIKey
    (``keys``: the records' InChIKeys when already computed)."""
    keys = keys if keys is not None else molecule_keys(records)
    held_ids = {r.cid for r in held_out}
    held_keys = set(molecule_keys(held_out).values()) - {None}
    return [r for r in records if r.cid not in held_ids and keys.get(r.cid) not in held_keys]


def protein_split(config: AlignConfig) -> tuple[list[ProteinQA], list[ProteinQA]]:
    """(train, dev) UniProtQA pairs of ``data.protein_path``, sequences cut to ``data.max_protein_length``."""
    path = config.data.protein_path
    if path is None:
        return [], []
    records = list(take(read_uniprotqa(path, config.data.protein_sequences, stats=ReadStats()), config.data.limit_proteins))
    limit = config.data.max_protein_length
    records = [replace(r, sequence=r.sequence[:limit]) if len(r.sequence) > limit else r for r in records]
    train_ids, _ = split_accessions([r.accession for r in records], 1.0 - config.data.protein_train_fraction, config.data.split_seed)
    keep = set(train_ids)
    return [r for r in records if r.accession in keep], [r for r in records if r.accession not in keep]


def protein_descriptions(records: Sequence[ProteinQA]) -> list[ProteinRecord]:
    """One reference per accession: its sequence and its answers joined (what is known about it)."""
    by_accession: dict[str, tuple[str, list[str]]] = {}
    for r in records:
        seq, answers = by_accession.setdefault(r.accession, (r.sequence, []))
        if r.answer not in answers:
            answers.append(r.answer)
    return [ProteinRecord(acc, seq, " ".join(a if a.endswith(".") else f"{a}." for a in answers))
            for acc, (seq, answers) in by_accession.items()]


def protein_references(records: Sequence[ProteinQA], source: str) -> list[ProteinRecord]:
    """The protein reference rows: from the training answers (``"answers"``), or the shipped PAIR records
    of the training accessions (``"shipped"``); never a dev/test protein either way."""
    if source == "answers":
        return protein_descriptions(records)
    train_accessions = {r.accession for r in records}
    shipped = [r for r in reference_proteins("all") if r.accession in train_accessions]
    if not shipped:
        raise ConfigError(
            "align: retrieval.protein_reference=shipped, but no training accession is in the shipped "
            "Swiss-Prot set; use retrieval.protein_reference=answers for this protein data"
        )
    return shipped
