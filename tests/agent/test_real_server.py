"""Against a real model server: ``biomedgpt serve-llm`` (``transformers serve`` with the embedded SmolLM2-135M).

``BIOMEDGPT_TOOL_CHOICE=router``: the router runs the (local) tools; the served model writes the opening sentence
and the composed answer's cited facts follow it verbatim. Checked, for a SMILES property, a literature question, a
comparison and an off-domain question: the answer comes from the model (``answer_source: llm``), every fact is
cited and every number checked (no unchecked claim), the off-domain question calls no tool; ``max_tokens`` holds by
the server's own token count; the deadline holds with a 3x margin (``model`` mode, where the model writes the whole
answer); a server killed mid-answer gives one clear line. No assertion depends on how fast the machine is. Four
questions, a small ``max_tokens``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from biomedgpt.agent.answer import cited_labels
from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.backends import BackendError
from biomedgpt.agent.grounding import check_sentence, evidence_from_state, split_sentences

pytestmark = pytest.mark.slow

MAX_TOKENS = 48
QUESTIONS = [  # (question, the router's tools)
    ("What is the molecular weight of CC(=O)Oc1ccccc1C(=O)O?", ["molecule_properties"]),
    ("What does the literature say about aspirin and colorectal cancer?", ["literature_search"]),
    ("Which has the higher logP, CCO or CCCCO?", ["molecule_properties", "molecule_properties"]),
    ("What is the capital of France?", []),
]
NAMES = ["CC(=O)Oc1ccccc1C(=O)O", "CCO", "CCCCO"]
#: Lines the assistant adds around the model's text (not the model's claims).
_OWN_LINES = ("**Unchecked:**", "Sources:", "Also consulted:", "Note:", "_(")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(biomedgpt_home, tmp_path_factory):
    """``biomedgpt serve-llm --port P`` as a user starts it; its printed settings are what the tests use."""
    from biomedgpt.commands.serve import missing_serve_packages

    missing = missing_serve_packages()
    assert not missing, f"the serve extra is not installed ({', '.join(missing)}): pip install -e '.[dev]'"
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = {**os.environ, "BIOMEDGPT_HOME": str(biomedgpt_home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                                                                                  "2")}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "biomedgpt.cli", "serve-llm", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 240  # a first run converts the GGUF (about 30 s) before serving
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve-llm exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve-llm did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        printed = dict(re.findall(r"export (BIOMEDGPT_LLM|OPENAI_BASE_URL)=(\S+)", log.read_text()))
        assert printed["OPENAI_BASE_URL"] == f"http://127.0.0.1:{port}/v1"
        assert printed["BIOMEDGPT_LLM"].startswith("openai:") and Path(printed["BIOMEDGPT_LLM"][7:]).is_dir()
        yield {"process": process, "settings": printed, "log": log}
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


@pytest.fixture
def served(server, monkeypatch):
    for name, value in server["settings"].items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "router")
    monkeypatch.setenv("BIOMEDGPT_LLM_MAX_TOKENS", str(MAX_TOKENS))
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")  # the tools answer locally (RDKit): only the model is served
    return server


def _model_sentences(answer: str) -> list[str]:
    return [s for s in split_sentences(answer) if not s.startswith(_OWN_LINES)]


def _unmarked(sentence: str) -> str:
    return re.sub(r"\[unverified: ([^\]]+)\]", r"[\1]", sentence)


def test_router_answers_come_from_the_served_model_cited_and_checked(served):
    from biomedgpt.agent.modes import LEAD_MAX_TOKENS

    assistant, composer = Assistant(), Assistant(llm="none")
    for question, tools in QUESTIONS:
        result = assistant.ask(question)
        assert [c["name"] for c in result.tool_calls] == tools, question  # off-domain: no tool
        assert all(c["ok"] for c in result.tool_calls)
        assert result.answer_source == "llm", question
        assert result.llm["output_tokens"] <= min(MAX_TOKENS, LEAD_MAX_TOKENS)  # the server's own count
        assert result.truncated == (result.llm["truncated"] is True)
        assert result.ungrounded == [], (question, result.answer)  # every claim cited and checked
        assert not result.answer.startswith("**Unchecked:**")
        # the model wrote the opening; the facts are the composed answer's, verbatim and cited
        lead, _, facts = result.answer.partition("\n\n")
        assert lead.strip() and facts == composer.ask(question).answer, question
        sources = evidence_from_state(result.artifacts)
        labels = {c["label"] for c in result.citations}
        assert labels <= set(sources), (question, labels)  # only records a tool returned are cited
        if tools:
            assert labels, question
        for sentence in _model_sentences(result.answer):  # every cited sentence, the model's or the records':
            if cited_labels(sentence):  # its numbers are values of the records it cites
                assert check_sentence(_unmarked(sentence), sources, NAMES) is None, (question, sentence)


ESSAY = "Write a long essay about the history of France."  # off-domain: no tool, a short prompt; greedy SmolLM2
# writes on and on regardless


def test_the_deadline_holds(served, monkeypatch):
    """``model`` mode: the model writes the whole answer (an off-domain question binds no tool)."""
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")
    deadline = 6.0
    monkeypatch.setenv("BIOMEDGPT_LLM_DEADLINE", str(deadline))
    monkeypatch.setenv("BIOMEDGPT_LLM_MAX_TOKENS", "1000")
    assistant = Assistant()
    start = time.monotonic()
    try:
        result = assistant.ask(ESSAY)
    except BackendError as error:  # a machine so loaded that not even the first token came in time
        assert time.monotonic() - start <= 3 * deadline
        assert "BIOMEDGPT_LLM_DEADLINE" in str(error) and "\n" not in str(error)
        return
    assert time.monotonic() - start <= 3 * deadline and result.llm["seconds"] <= 3 * deadline
    assert result.answer_source == "llm" and result.tool_calls == []
    assert result.truncated and result.llm["finish_reason"] in ("deadline", "length")
    if result.llm["finish_reason"] == "deadline":
        assert result.answer.rstrip().endswith("BIOMEDGPT_LLM_DEADLINE.)_")


def test_a_server_killed_mid_answer_is_one_clear_line(served, monkeypatch):
    from typer.testing import CliRunner

    from biomedgpt.cli import app

    monkeypatch.setenv("BIOMEDGPT_LLM_MAX_TOKENS", "1000")
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")  # the model writes the whole (long) answer
    process = served["process"]
    killed_after = None
    with pytest.raises(BackendError) as caught:
        for event in Assistant().stream(ESSAY):
            if event.kind == "token" and killed_after is None:
                killed_after = event.data
                process.send_signal(signal.SIGKILL)  # the server dies while it streams the answer
    message = str(caught.value)
    assert killed_after is not None and process.wait(30) == -signal.SIGKILL
    assert "\n" not in message and message.startswith(f"chat back end {served['settings']['BIOMEDGPT_LLM']!r} "
                                                      "failed mid-answer")
    # the next question finds no server: one line from the CLI, no traceback
    out = CliRunner().invoke(app, ["ask", "What is the molecular weight of CCO?", "--json"])
    assert out.exit_code == 1
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0] and "is the server running?" in lines[0], out.output
