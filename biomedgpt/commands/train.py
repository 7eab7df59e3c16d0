"""``biomedgpt train lm|align|qa --config NAME_OR_PATH [--set key=value ...] [--json]``.

Why a thin layer: the trainers (``training/lm.py``, ``align.py``, ``qa.py``) do the work; this command
resolves the config (a bundled preset ``tiny`` / ``mini-cpu`` / ``paper-10b``, or a YAML file), applies
the overrides, runs, and prints where the run directory is and the final numbers.

Several processes: ``torchrun --nproc_per_node N -m biomedgpt.cli train lm --config ...`` (only rank 0
prints). Re-running the same command resumes from the newest checkpoint in ``run_dir``.
"""

from __future__ import annotations

import json
from typing import Any

import typer

HELP_CONFIG = "A bundled preset (tiny, mini-cpu, paper-10b) or a YAML file."
HELP_SET = r"Override a config value (read as YAML), e.g. --set optim.lr=1e-4 --set 'data.paths=\[corpus.jsonl]'; repeatable."


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k != "loss_history"}


HELP_TRUST = ("Resume from checkpoints that hold pickled Python objects (run directories written before "
              "issue 13). Loading them can run code: use only for run directories you trust.")


def _run(kind: str, config_name: str, overrides: list[str], as_json: bool, trust_run_dir: bool = False) -> None:
    from biomedgpt.training.config import load_config
    from biomedgpt.training.distributed import cleanup, init_distributed

    config = load_config(kind, config_name, [*overrides, *(["trust_run_dir=true"] if trust_run_dir else [])])
    env = init_distributed()
    try:
        if kind == "lm":
            from biomedgpt.training.lm import train_lm as train
        elif kind == "align":
            from biomedgpt.training.align import train_align as train
        else:
            from biomedgpt.training.qa import train_qa as train
        metrics = train(config)
    finally:
        cleanup()
    if not env.is_main:
        return
    summary = _summary(metrics)
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"train {kind} ({config.name})", show_header=False)
    table.add_row("run dir", str(config.run_dir))
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, dict):
            value = json.dumps(value, default=str)
        table.add_row(key, str(value))
    Console().print(table)


#: ``biomedgpt train KIND``: the three trainers and what each does.
TRAINERS = {
    "lm": "Incremental causal-LM training on raw text (sentence-packed to the context length).",
    "align": "Multimodal alignment: LM frozen, adaptors (and optionally encoders) trained.",
    "qa": "MCQA fine-tuning, then accuracy by generation and by option log-likelihood.",
}


def _command(kind: str):
    """The typer command of one trainer (the same options for each)."""

    def command(
        config: str = typer.Option(..., "--config", "-c", help=HELP_CONFIG),
        set_: list[str] = typer.Option([], "--set", help=HELP_SET),
        as_json: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object."),
        trust_run_dir: bool = typer.Option(False, "--trust-run-dir", help=HELP_TRUST),
    ) -> None:
        _run(kind, config, set_, as_json, trust_run_dir)

    command.__name__ = f"train_{kind}_command"
    return command


def register(app: typer.Typer) -> None:
    train_app = typer.Typer(help="Train: incremental LM, multimodal alignment, MCQA fine-tuning.", no_args_is_help=True)

    for kind, summary in TRAINERS.items():
        train_app.command(kind, help=summary)(_command(kind))

    app.add_typer(train_app, name="train")
