"""``biomedgpt train lm|align|qa`` end to end on the tiny presets, through the real typer app."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from biomedgpt.cli import app
from tests.training.helpers import CHEBI, CORPUS, MEDMCQA, UNIPROTQA

DATA_FLAGS = {
    "lm": [f"data.paths=[{CORPUS}]", "max_steps=3"],
    "qa": [f"data.train_path={MEDMCQA}", f"data.eval_path={MEDMCQA}", "data.eval_format=medmcqa", "max_steps=3"],
    "align": [f"data.molecule_paths=[{CHEBI}]", f"data.protein_path={UNIPROTQA}", "max_steps=2"],
}


def _train(kind, run_dir, *extra):
    args = ["train", kind, "--config", "tiny", "--json", "--set", f"run_dir={run_dir}", "--set", "progress=false"]
    for item in [*DATA_FLAGS[kind], *extra]:
        args += ["--set", item]
    return CliRunner().invoke(app, args)


def _last_json(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


@pytest.mark.parametrize("kind", ["lm", "qa", "align"])
def test_train_tiny_end_to_end_then_rerun_is_idempotent(kind, tmp_path):
    run_dir = tmp_path / kind
    result = _train(kind, run_dir)
    assert result.exit_code == 0, result.output
    metrics = _last_json(result.stdout)
    assert metrics["steps"] == metrics["total_steps"] and metrics["final_loss"] > 0
    for name in ("config.yaml", "log.jsonl", "metrics.json", "model"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == metrics["steps"]
    assert "progress: false" in (run_dir / "config.yaml").read_text()  # the resolved config, overrides applied
    if kind == "qa":
        assert set(metrics["eval"]) == {"loglik", "generate"}
        assert metrics["eval"]["loglik"]["n"] == 8 and 0 <= metrics["eval"]["loglik"]["accuracy"] <= 1
    if kind == "align":
        from biomedgpt.model import load_model

        model = load_model(str(run_dir / "model"))
        assert model.config.trained and model.config.retrieval.enabled  # eval defaults to how it was trained
        assert metrics["trainable_parameters"]["llm"] == 0 and metrics["dev_loss"] is not None
    if kind == "lm":
        from biomedgpt.model.lm import load_lm

        llm, _ = load_lm(str(run_dir / "model"))
        assert llm.config.num_hidden_layers == 2

    again = _train(kind, run_dir)  # a finished run: resumes at the end and does nothing more
    assert again.exit_code == 0, again.output
    repeat = _last_json(again.stdout)
    assert repeat["resumed_from"].endswith(f"step-{metrics['steps']:06d}")
    assert repeat["steps"] == metrics["steps"] and repeat["final_loss"] == metrics["final_loss"]
    lines = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, metrics["steps"] + 1))


def test_train_errors_are_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["train", "lm", "--config", "tiny", "--set", "optim.lr=zero"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "optim.lr" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(
        app, ["train", "lm", "--config", "tiny", "--set", f"run_dir={tmp_path}", "--set", f"data.paths=[{tmp_path}/none.txt]"]
    )
    assert missing.exit_code == 1 and "none.txt" in missing.output
