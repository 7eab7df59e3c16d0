"""Training data assembly for alignment: ``molecule_split(config)``, ``protein_split(config)``, ``protein_references(...)``.

Why here: the data-set readers are the ground floor's (``core/datasets.py``, shared with evaluation,
the reference indexes and the benchmarks); what is specific to training is how the rows read are
split and which of them may serve as retrieval references. All splits are deterministic:

- molecules: rows sharing a CID or an InChIKey with ``data.molecule_exclude_path`` (the ChEBI-20 test
  split) are dropped first; then ``data.molecule_dev_holdout`` CIDs (``random.Random(split_seed)``
  over the sorted CIDs) are kept out as a dev set; the rest train;
- proteins: ``core/datasets.split_accessions(..., test_fraction=1 - protein_train_fraction,
  seed=split_seed)`` — with 0.8 / seed 0 exactly the split whose train part the shipped protein index
  holds, so training and evaluation see the same held-out accessions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from biomedgpt.core.datasets import (
    CaptionRecord, ProteinQA, ProteinRecord, ReadStats, read_chebi20, read_uniprotqa, split_accessions, take,
)
from biomedgpt.core.errors import ConfigError
from biomedgpt.model.retrieval import leaking_rows, reference_proteins
from biomedgpt.training.config import AlignConfig


def molecule_split(config: AlignConfig) -> tuple[list[CaptionRecord], list[CaptionRecord]]:
    """(train, dev) ChEBI-20 rows of ``data.molecule_path`` (both empty when it is not set)."""
    path = config.data.molecule_path
    if path is None:
        return [], []
    records = list(take(read_chebi20(path, stats=ReadStats()), config.data.limit_molecules))
    if config.data.molecule_exclude_path is not None:
        records = without_test_molecules(records, config.data.molecule_exclude_path)
    cids = sorted({r.cid for r in records})
    random.Random(config.data.split_seed).shuffle(cids)
    dev_cids = set(cids[: min(config.data.molecule_dev_holdout, max(len(cids) - 1, 0))])
    return [r for r in records if r.cid not in dev_cids], [r for r in records if r.cid in dev_cids]


def without_test_molecules(records: list[CaptionRecord], test_path: Path) -> list[CaptionRecord]:
    """``records`` minus the rows that are a test molecule under another row (same CID or InChIKey)."""
    leaking = set(leaking_rows(records, list(read_chebi20(test_path, stats=ReadStats()))))
    return [r for r in records if r.cid not in leaking]


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
