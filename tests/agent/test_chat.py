"""The chat REPL through typer's runner: an answer with sources, then /history, /sessions, /new, /help, /export,
/model, /tools, /quit."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from biomedgpt.agent.assistant import Assistant
from biomedgpt.cli import app


def test_chat_repl_commands(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    session = f"chat-{uuid.uuid4().hex[:8]}"
    lines = ["What is the molecular weight of CCO", "/history", "/sessions", "/bogus", "/help", "/model", "/tools",
             "/export", "/new other-" + session, "/quit", "never asked"]
    out = CliRunner().invoke(app, ["chat", "--session", session], input="\n".join(lines) + "\n",
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = out.output
    assert f"session '{session}'" in text
    assert "tools: molecule_properties(smiles='CCO') ✓" in text  # what the answer called, on one line
    assert "46.07" in text and "[RDKit]" in text and "https://www.rdkit.org" in text
    assert text.count("What is the molecular weight of CCO") >= 2  # asked, then shown by /history
    assert session in text.split("/sessions")[-1] or f"{session} *" in text
    assert "unknown command '/bogus'" in text
    assert f"new session 'other-{session}'" in text
    assert "/export FILE" in text and "/tools" in text and "Ctrl-C cancels" in text  # /help
    assert "chat back end: none" in text and "BioMedGPT model for the tools: tiny" in text  # /model
    assert "molecule_properties: Compute molecular properties" in text and "describe_protein" in text  # /tools
    assert "error: /export needs a file name" in text
    assert "never asked" not in text.split("/quit")[-1]
    history = Assistant().history(session)
    assert [t.question for t in history] == ["What is the molecular weight of CCO"]


def test_chat_export_writes_the_last_answer(monkeypatch, tmp_path):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    session = f"chat-{uuid.uuid4().hex[:8]}"
    md, csv_file, sdf = tmp_path / "a.md", tmp_path / "a.csv", tmp_path / "a.sdf"
    lines = ["/export early.md", "Compare the molecular weight of CCO and CCCO", f"/export {md}", f"/export {csv_file}",
             f"/export {sdf}", f"/export {tmp_path / 'refs.bib'}", f"/export {tmp_path / 'a.txt'}", "/quit"]
    out = CliRunner().invoke(app, ["chat", "--session", session], input="\n".join(lines) + "\n",
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "nothing to export yet" in out.output
    assert "[RDKit]" in md.read_text() and "**Sources**" in md.read_text()
    header, *rows = csv_file.read_text().splitlines()
    assert header.startswith("entity,kind,smiles,molecular weight (g/mol)") and len(rows) == 2
    assert "wrote 2 molecule(s)" in out.output and sdf.read_text().count("$$$$") == 2
    assert "cites no literature" in out.output  # refs.bib: nothing to write, said so
    assert "cannot tell the format" in out.output
