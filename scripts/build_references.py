"""Rebuild the shipped retrieval reference data in ``model/data/`` from the shared data sets.

Usage (from the repository root; see ``model/data/README.md``)::

    .venv/bin/python scripts/build_references.py \\
        --chebi ../shared/datasets/chebi20/validation.txt \\
        --chebi-test ../shared/datasets/chebi20/test.txt \\
        --swissprot ../shared/datasets/protein_swissprot_pair/test_set_sp202401.csv [--out model/data]

It writes the two reference files (gzip, ``mtime=0``) and both index files, and prints a JSON summary.
The data sets are read strictly (``core/datasets``: a malformed row stops the build, naming the line),
and ChEBI-20 validation rows that are the same molecule as a test row (same CID or InChIKey) are left
out, so retrieval can never hand a test molecule its own caption. The proteins' index holds only the
train side of the 80/20 accession split (seed 0), less any entry whose sequence equals a test entry's.

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
    default_molecule_index, default_protein_index, file_digest, leaking_rows,
)


def build_molecules(chebi: str | Path, out_dir: Path, chebi_test: str | Path | None = None) -> dict:
    """The ChEBI-20 validation reference (source lines unchanged, less test duplicates) and its index."""
    records = list(read_chebi20(chebi, strict=True))  # validates every row before anything is written
    excluded = leaking_rows(records, list(read_chebi20(chebi_test, strict=True))) if chebi_test else []
    drop = set(excluded)
    lines = Path(chebi).read_text(encoding="utf-8").splitlines(keepends=True)
    kept_lines = [lines[0]] + [line for line in lines[1:] if line.split("\t", 1)[0].strip() not in drop]
    atomic_write_bytes(out_dir / MOLECULE_RECORDS.name, gzip.compress("".join(kept_lines).encode("utf-8"), mtime=0))
    index = MoleculeIndex.build([(r.cid, r.smiles, r.description) for r in records if r.cid not in drop])
    index.save(out_dir / MOLECULE_INDEX.name, source_digest=file_digest(out_dir / MOLECULE_RECORDS.name),
               excluded_as_test_duplicates=sorted(excluded, key=int))
    return {"rows": len(records), "excluded_same_as_test": len(excluded), "indexed": len(index),
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


def build_references(chebi: str | Path | None, swissprot: str | Path | None, out_dir: str | Path = DATA_DIR, *,
                     chebi_test: str | Path | None = None) -> dict:
    """Write the reference files and index files of the given data sets into ``out_dir``; a summary."""
    out_dir = Path(out_dir)
    summary = {}
    if chebi:
        summary["molecules"] = build_molecules(chebi, out_dir, chebi_test)
    if swissprot:
        summary["proteins"] = build_proteins(swissprot, out_dir)
    default_molecule_index.cache_clear()  # this process now sees the new files
    default_protein_index.cache_clear()
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="scripts/build_references.py",
                                     description="Rebuild the shipped reference data and indexes in model/data/.")
    parser.add_argument("--chebi", help="ChEBI-20 validation.txt (never the test split)")
    parser.add_argument("--chebi-test", help="ChEBI-20 test.txt: validation rows of the same molecules are left out")
    parser.add_argument("--swissprot", help="PAIR test_set_sp202401.csv")
    parser.add_argument("--out", default=str(DATA_DIR), help="output folder (default: the package's model/data)")
    args = parser.parse_args(argv)
    if not (args.chebi or args.swissprot):
        parser.error("give --chebi and/or --swissprot")
    summary = build_references(args.chebi, args.swissprot, args.out, chebi_test=args.chebi_test)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
