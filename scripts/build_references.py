"""Rebuild the shipped retrieval reference data in ``model/data/`` from the shared data sets.

Usage (from the repository root; see ``model/data/README.md``)::

    .venv/bin/python scripts/build_references.py \\
        --chebi ../shared/datasets/chebi20/validation.txt ../shared/datasets/chebi20/test.txt \\
        --swissprot ../shared/datasets/protein_swissprot_pair/test_set_sp202401.csv [--out model/data]

It writes the two reference files (gzip, ``mtime=0``) and both index files, and prints a JSON summary.
The data sets are read strictly (``core/datasets``: a malformed row stops the build, naming the line).
The molecule reference holds **every** row of the ChEBI-20 files given (validation and test: what a user
asks about is best explained by all the molecules we know); evaluation holds the rows it scores out of it
by itself (``model/prompts.held_out_ids``), so a test molecule never gets its own or another scored row's
caption. The proteins' index holds only the train side of the 80/20 accession split (seed 0), less any
entry whose sequence equals a test entry's.

Why a script: building the shipped files is a maintainer's job done once per data release; the library
(``biomedgpt.model.retrieval``) only loads and searches them.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Sequence
from pathlib import Path

from biomedgpt.core.datasets import read_chebi20, read_swissprot_pair, split_accessions
from biomedgpt.core.files import atomic_write_bytes
from biomedgpt.model.retrieval import (
    DATA_DIR, MOLECULE_INDEX, MOLECULE_RECORDS, PROTEIN_INDEX, PROTEIN_RECORDS, MoleculeIndex, ProteinIndex,
    default_molecule_index, default_protein_index, file_digest,
)


def build_molecules(chebi: Sequence[str | Path], out_dir: Path) -> dict:
    """The ChEBI-20 reference: every row of the files in ``chebi``, source lines unchanged under their
    (shared) header, a CID already written keeping its first row; and the index of exactly those rows."""
    header: str | None = None
    lines: list[str] = []
    seen: set[str] = set()
    sources = []
    for path in chebi:
        rows = sum(1 for _ in read_chebi20(path, strict=True))  # validates every row before anything is written
        source_lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
        header = header or source_lines[0]
        if source_lines[0] != header:
            raise SystemExit(f"{path}: its header differs from {chebi[0]}'s; the reference has one header")
        kept = 0
        for line in source_lines[1:]:
            cid = line.split("\t", 1)[0].strip()
            if line.strip() and cid not in seen:
                seen.add(cid)
                lines.append(line if line.endswith("\n") else line + "\n")
                kept += 1
        sources.append({"file": Path(path).name, "rows": rows, "kept": kept, "sha256": file_digest(Path(path))})
    records_path = out_dir / MOLECULE_RECORDS.name
    atomic_write_bytes(records_path, gzip.compress("".join([header or "", *lines]).encode("utf-8"), mtime=0))
    index = MoleculeIndex.build([(r.cid, r.smiles, r.description) for r in read_chebi20(records_path, strict=True)])
    index.save(out_dir / MOLECULE_INDEX.name, source_digest=file_digest(records_path), sources=sources)
    return {"rows": len(lines), "sources": {s["file"]: s["kept"] for s in sources}, "indexed": len(index),
            "skipped": index.skipped}


def build_proteins(swissprot: str | Path, out_dir: Path) -> dict:
    """The Swiss-Prot PAIR reference (byte-identical, gzip) and the index of its train split."""
    records = list(read_swissprot_pair(swissprot, strict=True))
    atomic_write_bytes(out_dir / PROTEIN_RECORDS.name, gzip.compress(Path(swissprot).read_bytes(), mtime=0))
    train, test = split_accessions([r.accession for r in records], test_fraction=0.2, seed=0)
    test_set, keep = set(test), set(train)
    test_sequences = {r.sequence for r in records if r.accession in test_set}
    index = ProteinIndex.build([r for r in records if r.accession in keep and r.sequence not in test_sequences])
    index.save(out_dir / PROTEIN_INDEX.name, source_digest=file_digest(out_dir / PROTEIN_RECORDS.name),
               split={"test_fraction": 0.2, "seed": 0, "part": "train"})
    return {"rows": len(records), "indexed_train": len(index), "held_out_test": len(test)}


def build_references(chebi: Sequence[str | Path] | None, swissprot: str | Path | None,
                     out_dir: str | Path = DATA_DIR) -> dict:
    """Write the reference files and index files of the given data sets into ``out_dir``; a summary."""
    out_dir = Path(out_dir)
    summary = {}
    if chebi:
        summary["molecules"] = build_molecules(chebi, out_dir)
    if swissprot:
        summary["proteins"] = build_proteins(swissprot, out_dir)
    default_molecule_index.cache_clear()  # this process now sees the new files
    default_protein_index.cache_clear()
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="scripts/build_references.py",
                                     description="Rebuild the shipped reference data and indexes in model/data/.")
    parser.add_argument("--chebi", nargs="+", help="ChEBI-20 TSVs, all rows kept (validation.txt test.txt)")
    parser.add_argument("--swissprot", help="PAIR test_set_sp202401.csv")
    parser.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the package's model/data)")
    args = parser.parse_args(argv)
    if not (args.chebi or args.swissprot):
        parser.error("give --chebi and/or --swissprot")
    summary = build_references(args.chebi, args.swissprot, args.out)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
