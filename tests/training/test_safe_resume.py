"""Resuming never runs code from a run directory (issue 13): ``pytest -q tests/training/test_safe_resume.py``.

``state.pt`` and ``rng-rank*.pt`` are loaded with ``torch.load(weights_only=True)``: they hold tensors and
plain Python values only. A file that holds pickled objects (an older run, or someone else's) is
refused with a message naming ``--trust-run-dir``; with that flag it loads.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from biomedgpt.cli import app
from biomedgpt.core.errors import CheckpointError
from biomedgpt.training.lm import setup_lm
from biomedgpt.training.loop import latest_checkpoint
from tests.training.helpers import CORPUS, lm_config


class Payload:
    """Unpickling this writes a file: stands in for code hidden in someone else's checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trainer(run_dir, *extra):
    return setup_lm(lm_config(run_dir, "max_steps=3", "checkpoint_every=1", *extra))[0]


def _old_style_rng() -> dict:
    """What ``rng-rank0.pt`` held before issue 13: numpy's state as an ndarray (pickled object)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def test_new_checkpoints_load_weights_only(tmp_path):
    _trainer(tmp_path).fit()
    folder = latest_checkpoint(tmp_path)
    state = torch.load(folder / "state.pt", weights_only=True)
    assert state["step"] == 3
    rng = torch.load(folder / "rng-rank0.pt", weights_only=True)
    assert set(rng) >= {"python", "numpy", "torch"}


@pytest.mark.parametrize("name", ["state.pt", "rng-rank0.pt"])
def test_a_checkpoint_with_code_in_it_is_refused_and_runs_nothing(tmp_path, name):
    run = tmp_path / "run"
    _trainer(run, "max_steps=2").fit()
    folder = latest_checkpoint(run)
    marker = tmp_path / "pwned"
    original = torch.load(folder / name, weights_only=False)
    original["extra"] = Payload(marker)
    torch.save(original, folder / name)

    with pytest.raises(CheckpointError) as caught:
        _trainer(run).fit()

    assert not marker.exists()  # nothing was executed
    message = str(caught.value)
    assert name in message and "--trust-run-dir" in message


def test_an_old_run_directory_resumes_only_with_trust(tmp_path):
    run = tmp_path / "old"
    _trainer(run, "max_steps=2").fit()
    folder = latest_checkpoint(run)
    torch.save(_old_style_rng(), folder / "rng-rank0.pt")  # as written before issue 13

    with pytest.raises(CheckpointError) as caught:
        _trainer(run).fit()
    assert "--trust-run-dir" in str(caught.value)

    result = _trainer(run, "trust_run_dir=true").fit()
    assert result["resumed_from"].endswith("step-000002") and result["steps"] == 3
    assert "trust_run_dir" not in (run / "config.yaml").read_text()  # a trust decision is not written down


def test_the_cli_refuses_an_old_run_directory_and_takes_the_flag(tmp_path):
    run = tmp_path / "cli"
    _trainer(run, "max_steps=2").fit()
    torch.save(_old_style_rng(), latest_checkpoint(run) / "rng-rank0.pt")
    args = ["train", "lm", "--config", "tiny", "--set", f"run_dir={run}", "--set", f"data.paths=[{CORPUS}]",
            "--set", "progress=false", "--set", "max_steps=3", "--set", "checkpoint_every=1", "--json"]

    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "--trust-run-dir" in refused.output

    trusted = CliRunner().invoke(app, [*args, "--trust-run-dir"])
    assert trusted.exit_code == 0, trusted.output
    assert '"steps": 3' in trusted.stdout
