"""Shared paths and config builders for the trainer tests (tiny presets, CPU, small data in tests/data)."""

from __future__ import annotations

from pathlib import Path

from biomedgpt.training.config import load_config

DATA = Path(__file__).resolve().parents[1] / "data" / "training_loop"
CORPUS = DATA / "corpus.jsonl"  # 12 NCBI-disease PubMed abstracts (public domain)
MEDMCQA = DATA / "medmcqa.jsonl"  # 24 MedMCQA dev questions (Apache-2.0)
CHEBI = DATA / "chebi20_sample.tsv"  # 24 short ChEBI-20 validation rows (CC BY 4.0)
UNIPROTQA = DATA / "uniprotqa_sample.json"  # 10 Swiss-Prot proteins, UniProtQA layout (CC BY 4.0)


def lm_config(run_dir: Path, *extra: str):
    return load_config("lm", "tiny", [f"run_dir={run_dir}", f"data.paths=[{CORPUS}]", "progress=false", *extra])


def qa_config(run_dir: Path, *extra: str):
    return load_config(
        "qa",
        "tiny",
        [
            f"run_dir={run_dir}",
            f"data.train_path={MEDMCQA}",
            "data.train_format=medmcqa",
            f"data.eval_path={MEDMCQA}",
            "data.eval_format=medmcqa",
            "progress=false",
            *extra,
        ],
    )


def align_config(run_dir: Path, *extra: str):
    return load_config(
        "align",
        "tiny",
        [f"run_dir={run_dir}", f"data.molecule_paths=[{CHEBI}]", f"data.protein_path={UNIPROTQA}", "progress=false", *extra],
    )
