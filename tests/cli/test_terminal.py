"""A quiet, interruptible terminal, with the shipped mini model: Ctrl-C during a model answer returns to the chat
prompt (in a real pty), ends ``run`` with the finished steps saved, and ``ask --json 2>err`` leaves err empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pexpect
import pytest

from biomedgpt.core.terminal import QUIET_ENVIRONMENT

BIN = Path(sys.executable).with_name("biomedgpt")
#: The issue's bound for a cancelled question to come back, and the margin the tests allow on a loaded machine.
CANCEL_SECONDS = 2.0
MARGIN = 3
WRITING = "is writing its answer"  # the status line while the BioMedGPT model generates


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT}  # as a user's shell has it
    env.update({"BIOMEDGPT_OFFLINE": "1", "BIOMEDGPT_MODEL": "mini", "OMP_NUM_THREADS": "2", "TERM": "xterm",
                "COLUMNS": "200", **extra})
    return env


@pytest.mark.slow
def test_ctrl_c_during_a_model_answer_returns_to_the_chat_prompt():
    from biomedgpt.agent.assistant import Assistant

    session = f"pty-{uuid.uuid4().hex[:8]}"
    child = pexpect.spawn(str(BIN), ["chat", "--session", session], env=_env(), encoding="utf-8",
                          dimensions=(40, 200), timeout=300)
    try:
        child.expect_exact("you> ")
        child.sendline("What does the BioMedGPT model say about CCO?")
        child.expect_exact(WRITING, timeout=300)  # the model is loaded and generating
        time.sleep(0.5)
        start = time.monotonic()
        child.sendintr()
        child.expect_exact("cancelled", timeout=CANCEL_SECONDS * MARGIN)
        child.expect_exact("you> ", timeout=CANCEL_SECONDS * MARGIN)
        assert time.monotonic() - start < CANCEL_SECONDS * MARGIN
        # the REPL goes on, and the cancelled question left nothing in the session
        child.sendline("What is the molecular weight of CCO")
        child.expect_exact("46.07", timeout=120)
        child.expect_exact("you> ")
        child.sendintr()  # at the prompt: stays
        child.expect_exact("Ctrl-D or /quit leaves")
        child.sendline("/quit")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert [turn.question for turn in Assistant().history(session)] == ["What is the molecular weight of CCO"]


@pytest.mark.slow
def test_ctrl_c_ends_run_with_the_finished_steps_saved(tmp_path):
    script = tmp_path / "steps.yaml"
    script.write_text("steps:\n  - ask: 'What is the molecular weight of CCO?'\n"
                      "  - ask: 'What does the BioMedGPT model say about CCCO?'\n  - ask: 'What is the TPSA of CCO?'\n")
    out = tmp_path / "report.jsonl"
    child = pexpect.spawn(str(BIN), ["run", str(script), "--out", str(out)], env=_env(), encoding="utf-8",
                          dimensions=(40, 200), timeout=300)
    try:
        child.expect_exact(WRITING, timeout=300)  # step 2, in the model
        start = time.monotonic()
        child.sendintr()
        child.expect_exact("interrupted: 1 of 3 steps", timeout=CANCEL_SECONDS * MARGIN)
        child.expect(pexpect.EOF, timeout=30)
        assert time.monotonic() - start < CANCEL_SECONDS * MARGIN + 5
    finally:
        child.close(force=True)
    assert child.exitstatus == 130
    steps = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(s["id"], s["ok"]) for s in steps] == [("1", True)]
    state = json.loads((tmp_path / "report.jsonl.state.json").read_text())
    assert list(state["steps"]) == ["1"]  # --resume continues at step 2


@pytest.mark.slow
def test_ask_json_leaves_stderr_empty_and_stdout_pure_json(tmp_path):
    err = tmp_path / "err"
    with err.open("w") as handle:
        done = subprocess.run([str(BIN), "ask", "What does the BioMedGPT model say about CCO?", "--json"], env=_env(), stdout=subprocess.PIPE,
                              stderr=handle, text=True, timeout=600)
    assert done.returncode == 0, err.read_text()
    data = json.loads(done.stdout)  # nothing but the JSON on stdout
    assert data["artifacts"]["model_answers"], "the mini model was loaded and answered"
    noise = err.read_text()
    assert "Loading weights" not in noise and "%|" not in noise and "\r" not in noise
    assert noise == ""


def test_ingest_prints_its_report_on_a_line_of_its_own(tmp_path):
    import re

    notes = tmp_path / "notes.md"
    notes.write_text("# Zebrafish fins\n\n" + " ".join(f"Fin rays regrow after amputation, sentence {i}." for i in range(60)))
    child = pexpect.spawn(str(BIN), ["ingest", str(notes), "--batch-size", "4"],
                          env=_env(BIOMEDGPT_HOME=str(tmp_path / "home")), encoding="utf-8", dimensions=(40, 200),
                          timeout=300)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    lines = child.before.replace("\r\n", "\n").split("\n")
    report = next(line for line in lines if "ingested 1 file(s)" in line)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", report.split("\r")[-1])  # what the terminal shows of the line
    assert "ingest: " in child.before  # the status line was drawn, and then cleared
    assert shown.startswith("ingested 1 file(s), 1 record(s)")
