"""The session-less fast path answers exactly as the graph does: ``pytest tests/agent/test_fast_path.py``.

Why: ``agent/fast_path.py`` answers session-less router questions without LangGraph (issue 16, items 2 and 4),
which is allowed only if nothing a user sees changes. Each question here is asked through the graph
(``BIOMEDGPT_FAST_PATH=0``) and through the fast path, each time from a cold HTTP cache against the loopback
fixture server (``tests/fakeservers.py``: real HTTP on 127.0.0.1, nothing monkeypatched), and the answer text,
citations, tool calls, artifacts, attributes, the ``--json``/md/csv exports and the streamed events must be
equal. A first pass over every question warms what is stateful (the literature store, whose ``pubmed_fetch``
says how many chunks were new) so both compared passes start from the same store.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from biomedgpt.agent import fast_path
from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.export import render
from tests.fakeservers import clear_http_state, fake_services, recording_server  # noqa: F401

QUESTIONS = [
    "What is the molecular weight of CCO?",                                  # RDKit only
    "What are the TPSA and logP of CC(=O)Oc1ccccc1C(=O)O?",                  # two attributes, one tool
    "Compare the molecular weight of CCO and CCCO",                         # a comparison, two calls
    "Which is more lipophilic, c1ccccc1 or CCO?",                             # a ranking
    "What is the molecular weight of C1CC(?",                                  # invalid SMILES: nothing is run
    "What is the capital of France?",                                         # off-domain
    "What can you do?",                                                       # help
    "Describe aspirin",                                                       # PubChem over HTTP
    "What is the molecular weight of aspirin?",                               # a name resolved by PubChem
    "What is the molecular weight of nosuchcompoundxyz?",                     # a failing look-up
    "What is P05067?",                                                        # UniProt over HTTP
    "What does the literature say about BRCA1 and breast cancer?",            # the local literature store
    "Fetch PubMed abstracts about CRISPR screens",                             # E-utilities, then the store
    "Which known molecules are similar to CC(=O)Oc1ccccc1C(=O)O?",           # the ChEBI-20 index + PubChem
    "Describe CCO",                                                           # RDKit + the nearest known molecules
    "What does the BioMedGPT model say about CCO?",                           # the BioMedGPT model (tiny here)
]


def _events(question: str, enabled: bool, monkeypatch) -> tuple[list, object]:
    monkeypatch.setenv(fast_path.ENV_SWITCH, "1" if enabled else "0")
    clear_http_state()  # a cold cache and fresh services: both paths send the same requests
    events, result = [], None
    for event in Assistant().stream(question):
        if event.kind == "result":
            result = event.data
        else:
            events.append((event.kind, event.data))
    return events, result


def test_the_fast_path_answers_exactly_as_the_graph(fake_services, monkeypatch):
    taken = []
    prepare = fast_path.prepare

    def counting(assistant, question):
        prepared = prepare(assistant, question)
        taken.append(prepared is not None)
        return prepared

    monkeypatch.setattr(fast_path, "prepare", counting)
    for question in QUESTIONS:  # warm-up: the literature store and the question understanding
        _events(question, True, monkeypatch)
    taken.clear()
    kinds = set()
    for question in QUESTIONS:
        graph_events, graph = _events(question, False, monkeypatch)
        fast_events, fast = _events(question, True, monkeypatch)
        assert graph.to_dict() == fast.to_dict(), question
        assert graph.attributes == fast.attributes and graph.session is None and fast.session is None
        for fmt in ("json", "md", "csv"):
            assert render(graph, fmt) == render(fast, fmt), (question, fmt)
        assert graph_events == fast_events, question
        kinds.update(call["name"] + (":ok" if call["ok"] else ":failed") for call in fast.tool_calls)
    assert taken == [True] * len(QUESTIONS)  # the graph pass never reached prepare(); the fast pass always did
    # the set is varied: RDKit, PubChem, UniProt, the store, E-utilities, the index and the model ran; one failed
    assert {"molecule_properties:ok", "pubchem_lookup:ok", "uniprot_lookup:ok", "literature_search:ok",
            "pubmed_fetch:ok", "similar_known:ok", "describe_molecule:ok"} <= kinds and any(kind.endswith(":failed") for kind in kinds), kinds


def test_offline_failures_are_worded_as_the_graph_words_them(fake_services, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")  # a cold cache: every PubChem look-up is a miss
    graph_events, graph = _events("What is the molecular weight of caffeine?", False, monkeypatch)
    fast_events, fast = _events("What is the molecular weight of caffeine?", True, monkeypatch)
    assert graph.to_dict() == fast.to_dict() and graph_events == fast_events
    assert "needs the network (offline mode)" in fast.tool_calls[0]["error"]


@pytest.mark.parametrize("question", ["What is the molecular weight of CCO?", "Describe aspirin"])
def test_ask_json_is_the_same_either_way(fake_services, monkeypatch, question):
    from biomedgpt.cli import app

    outputs = []
    for enabled in ("0", "1"):
        clear_http_state()
        out = CliRunner().invoke(app, ["ask", "--json", question], env={fast_path.ENV_SWITCH: enabled})
        assert out.exit_code == 0, out.output
        outputs.append(out.stdout)
    assert outputs[0] == outputs[1] and '"tool_calls"' in outputs[0]


def test_what_the_fast_path_leaves_to_the_graph(monkeypatch):
    """A session, a chat model, custom tools or a step limit under 1 go through the graph."""
    from langchain_core.tools import tool

    @tool
    def noop(x: str) -> str:
        """Nothing."""
        return x

    assert fast_path.applies(Assistant(), None)
    assert not fast_path.applies(Assistant(), "a-session")
    assert not fast_path.applies(Assistant(llm="openai:gpt-4o-mini"), None)
    assert not fast_path.applies(Assistant(tools=[noop]), None)
    assert not fast_path.applies(Assistant(max_steps=0), None)
    monkeypatch.setenv(fast_path.ENV_SWITCH, "0")
    assert not fast_path.applies(Assistant(), None)


def test_a_step_limit_of_one_is_reported_alike(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    answers = []
    for enabled in ("0", "1"):
        monkeypatch.setenv(fast_path.ENV_SWITCH, enabled)
        answers.append(Assistant(max_steps=1).ask("What is the molecular weight of CCO?").to_dict())
    assert answers[0] == answers[1]
