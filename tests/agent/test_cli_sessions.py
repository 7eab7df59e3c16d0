"""CLI (typer's runner and a subprocess), sessions across processes, and scripted runs with --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.script import expand, load_script
from biomedgpt.cli import app
from biomedgpt.core.errors import InputError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
BIN = Path(sys.executable).with_name("biomedgpt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIOMEDGPT_OFFLINE": "1", "BIOMEDGPT_MODEL": "tiny", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env, timeout=300)


def test_ask_json_has_documented_shape(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    out = CliRunner().invoke(app, ["ask", f"What is the molecular weight of {ASPIRIN}?", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) == {"answer", "answer_source", "ungrounded", "truncated", "citations", "tool_calls", "artifacts"}
    assert (data["answer_source"], data["ungrounded"], data["truncated"]) == ("composed", [], False)  # no chat model
    assert data["answer"].startswith("The average molecular weight of")
    assert "180.16" in data["answer"] and "[RDKit]" in data["answer"]
    assert data["citations"] == [{"label": "RDKit", "source": "RDKit", "url": "https://www.rdkit.org",
                                  "title": "descriptors computed locally with RDKit (not looked up)"}]
    assert data["tool_calls"] == [{"name": "molecule_properties", "args": {"smiles": ASPIRIN}, "ok": True, "error": None}]
    assert set(data["artifacts"]) == {"compounds", "properties", "proteins", "model_answers", "similar", "passages"}
    props = data["artifacts"]["properties"][0]
    assert props["formula"] == "C9H8O4" and props["lipinski_pass"] is True


def test_ask_renders_answer_and_sources(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    out = CliRunner().invoke(app, ["ask", "What is the TPSA of CCO?"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "tools: molecule_properties(smiles='CCO') ✓" in out.output  # the tools it called, one line
    assert "TPSA of CCO is 20.23" in out.output and "Sources" in out.output and "https://www.rdkit.org" in out.output


def test_bad_input_is_one_clear_line():
    out = CliRunner().invoke(app, ["ask", "   ", "--json"])
    assert out.exit_code == 1
    assert "question '   ' is empty" in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(app, ["ask", "hi", "--session", "bad name!"])
    assert out.exit_code == 1 and "session name 'bad name!' is not valid" in out.output


def test_session_written_by_cli_resumes_in_python_and_back(monkeypatch):
    session = f"s-{uuid.uuid4().hex[:8]}"
    first = _cli("ask", f"What is the logP of {ASPIRIN}?", "--session", session, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["tool_calls"][0]["args"] == {"smiles": ASPIRIN}

    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    assistant = Assistant()
    second = assistant.ask("What is its molecular weight?", session=session)  # "its" = aspirin, from SQLite
    assert second.tool_calls[0]["args"] == {"smiles": ASPIRIN}
    assert "180.16" in second.answer
    assert any(info.name == session and info.turns == 2 for info in assistant.sessions())
    assistant.close()

    third = _cli("ask", "How many rings does it have?", "--session", session, "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["tool_calls"][0]["args"] == {"smiles": ASPIRIN}
    assert [t.question for t in Assistant().history(session)] == [
        f"What is the logP of {ASPIRIN}?", "What is its molecular weight?", "How many rings does it have?"]


def test_run_records_failures_and_resumes(tmp_path):
    session = f"run-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "script.yaml"
    script.write_text(
        f"session: {session}\n"
        "vars:\n"
        f"  molecules: [CCO, \"{ASPIRIN}\"]\n"
        "  blank: ' '\n"
        "steps:\n"
        "  - ask: 'What is the molecular weight of {item}?'\n"
        "    for_each: molecules\n"
        "  - ask: '{blank}'\n"
        "  - ask: 'What is its logP?'\n")
    out = tmp_path / "report.jsonl"
    first = _cli("run", str(script), "--out", str(out))
    assert first.returncode == 1  # one step failed; the run still went on
    steps = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(s["id"], s["ok"]) for s in steps] == [("1.1", True), ("1.2", True), ("2", False), ("3", True)]
    assert "is empty" in steps[2]["error"]
    assert steps[3]["tool_calls"][0]["args"] == {"smiles": ASPIRIN}  # the follow-up used the shared session
    assert "[RDKit]" in steps[0]["answer"] and steps[0]["citations"][0]["label"] == "RDKit"
    assert (tmp_path / "report.jsonl.state.json").exists()
    assert "steps, 1 failed" in first.stdout

    again = _cli("run", str(script), "--out", str(out), "--resume")
    assert again.returncode == 1
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["resumed"] for s in resumed] == [True, True, False, True]
    assert "4 steps (3 resumed), 1 failed" in again.stdout  # skipped steps count as done
    # the finished steps were not asked again: the session still holds three questions
    assert len(Assistant().history(session)) == 3


def test_markdown_report_and_script_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    out = tmp_path / "r.md"
    report = Assistant().run({"steps": [{"ask": f"What is the TPSA of {ASPIRIN}?"}]}, out=out)
    assert report.ok and out.read_text().startswith("# Report: script")
    assert "[RDKit]" in out.read_text() and "molecule_properties ok" in out.read_text()
    with pytest.raises(InputError, match="uses \\{missing\\}"):
        expand(load_script({"steps": [{"ask": "Describe {missing}"}]})[0])
    with pytest.raises(InputError, match="for_each 'xs' must name a non-empty list"):
        expand(load_script({"steps": [{"ask": "Describe {item}", "for_each": "xs"}]})[0])
    with pytest.raises(InputError, match="steps"):
        load_script({"vars": {}})
    with pytest.raises(InputError, match="--resume needs --out"):
        Assistant().run({"steps": [{"ask": "x"}]}, resume=True)
    with pytest.raises(InputError, match=r"\.md or \.jsonl"):
        Assistant().run({"steps": [{"ask": "x"}]}, out=tmp_path / "r.txt")
