"""Two CPU processes (torchrun, gloo) give the single-process loss on the same global batch: DDP and FSDP2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from biomedgpt.cli import app
from tests.training.helpers import CHEBI, CORPUS, UNIPROTQA

DATA = {
    "lm": [f"data.paths=[{CORPUS}]", "max_steps=3"],
    "align": [f"data.molecule_paths=[{CHEBI}]", f"data.protein_path={UNIPROTQA}", "max_steps=3", "optim.lr=0.05"],
}


def _flags(kind, run_dir, *extra):
    flags = []
    for item in [f"run_dir={run_dir}", "progress=false", "save_final_model=false", *DATA[kind], *extra]:
        flags += ["--set", item]
    return flags


def _losses(run_dir):
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if '"loss"' in line]


def _torchrun(kind, run_dir, strategy, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "biomedgpt.cli", "train", kind, "--config", "tiny", "--json",
        *_flags(kind, run_dir, f"strategy={strategy}", *extra),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=os.getcwd())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
    assert result["world_size"] == 2 and result["strategy"] == strategy
    return _losses(run_dir)


# grad_clip=null: training/loop.py clips one norm over all trainable parameters, and torch refuses to mix the
# sharded adapters (DTensors) with the replicated encoders there; setup_align says so for FSDP + LoRA + clipping.
LORA = ["lora.enabled=true", "lora.r=4", "lora.alpha=8", "lora.dropout=0.0", "save_final_model=true",
        "optim.grad_clip=null"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "strategy", "extra"),
    [
        ("lm", "ddp", []),
        # FSDP2 on CPU/gloo: the LM sharded, GIN/ESM-2/adaptors replicated; molecule-only and
        # protein-only micro-batches on different ranks exercise the replicated-gradient path.
        ("align", "fsdp", []),
        # LoRA (issue 15): the adapters are sharded with their decoder layers; the final model is gathered,
        # rebuilt and saved with its adapters.
        ("align", "fsdp", LORA),
    ],
    ids=["lm-ddp", "align-fsdp", "align-fsdp-lora"],
)
def test_two_processes_match_one(kind, strategy, extra, tmp_path):
    # One process: micro-batch 2 × 2 accumulation steps; two processes: micro-batch 2 each, no accumulation.
    single = CliRunner().invoke(app, ["train", kind, "--config", "tiny", "--json",
                                      *_flags(kind, tmp_path / "single", *extra)])
    assert single.exit_code == 0, single.output
    expected = _losses(tmp_path / "single")
    assert len(expected) == 3
    assert _torchrun(kind, tmp_path / strategy, strategy, *extra) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    if "lora.enabled=true" in extra:
        from biomedgpt.model import load_model
        from biomedgpt.model.lora import lora_state_dict

        one = lora_state_dict(load_model(str(tmp_path / "single" / "model"), merge_lora=False).llm)
        two = lora_state_dict(load_model(str(tmp_path / strategy / "model"), merge_lora=False).llm)
        assert one.keys() == two.keys() and any(v.abs().sum() > 0 for k, v in one.items() if "lora_B" in k)
        assert all(torch.allclose(one[k], two[k], rtol=1e-3, atol=1e-5) for k in one)
