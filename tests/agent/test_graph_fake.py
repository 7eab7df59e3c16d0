"""The graph with a scripted chat model: tool calls, recovery from a failing tool, the step limit."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.messages import AIMessage

from biomedgpt.agent.assistant import Assistant
from tests.agent.helpers import TEST_TOOLS, ToolCallingFakeChatModel, call, fake_llm

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture(autouse=True)
def _model_picks_tools(monkeypatch):
    """The scripted chat models here call tools themselves: ``model`` mode (agent/modes.py)."""
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")


def test_recovers_from_failing_tool_and_checks_citations():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("broken_lookup", "c1", query="aspirin")]),
        AIMessage(content="", tool_calls=[call("rdkit_properties", "c2", smiles=ASPIRIN)]),
        AIMessage(content="Aspirin has formula C9H8O4 [RDKit]. It is sold as Bayer [PubChem CID 999]."),
    ])
    result = Assistant(llm=llm, tools=TEST_TOOLS).ask("What is the formula of aspirin?")
    assert [c["name"] for c in result.tool_calls] == ["broken_lookup", "rdkit_properties"]
    failed, ok = result.tool_calls
    assert failed["ok"] is False and "PubChem" in failed["error"] and "503" in failed["error"]
    assert ok["ok"] is True and ok["error"] is None and ok["args"] == {"smiles": ASPIRIN}
    assert result.artifacts["properties"][0]["formula"] == "C9H8O4"
    assert "[RDKit]" in result.answer
    # a label that no tool produced is marked, not passed off as evidence
    assert "[unverified: PubChem CID 999]" in result.answer
    assert [c["label"] for c in result.citations] == ["RDKit"]
    assert set(result.to_dict()) == {"answer", "answer_source", "ungrounded", "truncated", "citations", "tool_calls",
                                     "artifacts"}
    assert result.answer_source == "llm" and result.truncated is False
    assert set(llm.bound) >= {"broken_lookup", "rdkit_properties"}


def test_llm_answer_without_labels_gets_sources_attached():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("rdkit_properties", "c1", smiles="CCO")]),
        AIMessage(content="Ethanol is small."),
    ])
    result = Assistant(llm=llm, tools=TEST_TOOLS).ask("Tell me about CCO")
    assert result.answer.startswith("Ethanol is small.")
    assert "Sources: [RDKit]" in result.answer
    assert result.citations[0]["source"] == "RDKit"


def test_graceful_end_at_step_limit():
    forever = (AIMessage(content="", tool_calls=[call("rdkit_properties", f"c{i}", smiles="CCO")])
               for i in itertools.count())
    llm = ToolCallingFakeChatModel(messages=forever)
    result = Assistant(llm=llm, tools=TEST_TOOLS, max_steps=3).ask("Describe CCO")
    assert result.answer.startswith("Could not finish in 3 steps; here is what was found.")
    assert "[RDKit]" in result.answer and "C2H6O" in result.answer
    assert len(result.tool_calls) == 3 and all(c["ok"] for c in result.tool_calls)


def test_progress_reaches_custom_stream():
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("noisy_tool", "c1", query="ethanol")]),
        AIMessage(content="Done [RDKit]."),
    ])
    events = list(Assistant(llm=llm, tools=TEST_TOOLS).stream("ethanol?"))
    kinds = [e.kind for e in events]
    assert ("progress", "PubChem busy, retrying in 2 s") in [(e.kind, e.data) for e in events]
    assert kinds.index("tool_call") < kinds.index("progress") < kinds.index("tool_result")
    assert kinds[-1] == "result" and events[-1].data.answer.startswith("Done [RDKit].")
    assert "".join(e.data for e in events if e.kind == "token") == "Done [RDKit]."  # the answer streamed


def test_aask_and_memory_of_a_named_session(tmp_path, monkeypatch):
    import asyncio

    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path))
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("rdkit_properties", "c1", smiles="CCO")]),
        AIMessage(content="C2H6O [RDKit]."),
        AIMessage(content="As I said, C2H6O [RDKit]."),
        AIMessage(content="Also [PMID 123]."),
    ])
    assistant = Assistant(llm=llm, tools=TEST_TOOLS)
    first = asyncio.run(assistant.aask("Formula of CCO?", session="mem"))
    assert first.answer.startswith("C2H6O [RDKit].") and first.session == "mem"
    second = assistant.ask("And again?", session="mem")
    # the second turn saw the first one (the chat model got the whole conversation) and has no tools of its own
    assert second.tool_calls == [] and second.artifacts["properties"] == []
    # [RDKit] cites the record of the first turn: still verified, still linked
    assert second.answer == "As I said, C2H6O [RDKit]." and second.citations[0]["label"] == "RDKit"
    third = assistant.ask("Papers?", session="mem")
    # a label no tool returned is marked, and the sentence is an unchecked claim
    assert third.answer.endswith("\n\nAlso [unverified: PMID 123].") and third.citations == []
    assert third.ungrounded == ["Also [PMID 123]."] and third.answer.startswith("**Unchecked:** 1 claim")
    assert [t.question for t in assistant.history("mem")] == ["Formula of CCO?", "And again?", "Papers?"]
    assert (tmp_path / "sessions.sqlite").exists()
    assert [s.name for s in assistant.sessions()] == ["mem"]
