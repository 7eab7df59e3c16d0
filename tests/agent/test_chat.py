"""The chat REPL through typer's runner: an answer with sources, then /history, /sessions, /new, /quit."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from biomedgpt.agent.assistant import Assistant
from biomedgpt.cli import app


def test_chat_repl_commands(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    session = f"chat-{uuid.uuid4().hex[:8]}"
    lines = ["What is the molecular weight of CCO", "/history", "/sessions", "/bogus", "/new other-" + session,
             "/quit", "never asked"]
    out = CliRunner().invoke(app, ["chat", "--session", session], input="\n".join(lines) + "\n",
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = out.output
    assert f"session '{session}'" in text
    assert "→ molecule_properties(smiles='CCO')" in text and "✓ molecule_properties" in text
    assert "46.07" in text and "[RDKit]" in text and "https://www.rdkit.org" in text
    assert text.count("What is the molecular weight of CCO") >= 2  # asked, then shown by /history
    assert session in text.split("/sessions")[-1] or f"{session} *" in text
    assert "unknown command '/bogus'" in text
    assert f"new session 'other-{session}'" in text
    assert "never asked" not in text.split("/quit")[-1]
    history = Assistant().history(session)
    assert [t.question for t in history] == ["What is the molecular weight of CCO"]
