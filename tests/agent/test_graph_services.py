"""The graph with the real biomedgpt tools against the loopback PubChem/UniProt server.

A scripted chat model (``GenericFakeChatModel`` with ``bind_tools``) drives real tool calls; the
offline planner drives the same graph without any chat model, including a follow-up from memory.
"""

from __future__ import annotations

import pytest
from biomedgpt.agent.assistant import Assistant
from langchain_core.messages import AIMessage

from tests.agent.helpers import call, fake_llm
from tests.fakeservers import busy_json, fake_services, inject, recording_server  # noqa: F401


@pytest.fixture(autouse=True)
def _model_picks_tools(monkeypatch):
    """The scripted chat models here call tools themselves: ``model`` mode (agent/modes.py)."""
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")


def test_fake_llm_calls_real_tools(fake_services):
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("pubchem_lookup", "c1", query="aspirin"),
                                          call("uniprot_lookup", "c2", query="P05067")]),
        AIMessage(content="Aspirin weighs 180.16 g/mol [PubChem CID 2244]; APP is a membrane protein "
                          "[UniProt P05067]."),
    ])
    result = Assistant(llm=llm).ask("Aspirin weight, and what is P05067?")
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("pubchem_lookup", True), ("uniprot_lookup", True)]
    compound = result.artifacts["compounds"][0]
    assert compound["cid"] == 2244 and abs(compound["molecular_weight"] - 180.16) < 0.01
    assert result.artifacts["proteins"][0]["accession"] == "P05067"
    labels = [c["label"] for c in result.citations]
    assert labels == ["PubChem CID 2244", "UniProt P05067"]
    assert result.citations[0]["url"] == "https://pubchem.ncbi.nlm.nih.gov/compound/2244"
    assert result.citations[1]["source"] == "UniProt"
    assert fake_services.count("/rest/pug/") >= 1 and fake_services.count("/uniprotkb/") >= 1


def test_failing_service_becomes_a_message_the_plan_reacts_to(fake_services):
    inject(fake_services.server, "/rest/pug/compound/name/aspirin/cids/JSON", [busy_json()] * 6)
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("pubchem_lookup", "c1", query="aspirin")]),
        AIMessage(content="", tool_calls=[call("molecule_properties", "c2", smiles="CC(=O)Oc1ccccc1C(=O)O")]),
        AIMessage(content="PubChem was busy; computed: C9H8O4 [RDKit]."),
    ])
    result = Assistant(llm=llm).ask("aspirin formula")
    first, second = result.tool_calls
    assert first["ok"] is False and "PubChem" in first["error"]
    assert second["ok"] is True
    assert result.artifacts["properties"][0]["formula"] == "C9H8O4"
    assert [c["label"] for c in result.citations] == ["RDKit"]


def test_offline_planner_follow_up_uses_memory(fake_services):
    assistant = Assistant()
    first = assistant.ask("Describe aspirin", session="follow-up-test")
    assert any(c["name"] == "pubchem_lookup" and c["ok"] for c in first.tool_calls)
    assert "[PubChem CID 2244]" in first.answer
    second = assistant.ask("What is its molecular weight?", session="follow-up-test")
    assert second.tool_calls, second.answer
    assert second.answer.startswith("The molecular weight of")
    assert "180.16 g/mol [PubChem CID 2244]" in second.answer
    history = assistant.history("follow-up-test")
    assert [t.question for t in history] == ["Describe aspirin", "What is its molecular weight?"]
    assert history[1].citations and history[1].citations[0]["label"] == "PubChem CID 2244"


def test_offline_mode_says_what_needs_the_network(fake_services, monkeypatch):
    from biomedgpt.core.settings import reset_settings

    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")  # with a cold cache every PubChem look-up is a miss
    reset_settings()
    result = Assistant().ask("What is the molecular weight of caffeine?")
    failed = [c for c in result.tool_calls if not c["ok"]]
    assert failed and failed[0]["name"] == "pubchem_lookup"
    assert "needs the network (offline mode)" in failed[0]["error"]
    assert "Could not look up" in result.answer and "needs the network" in result.answer
    assert fake_services.count("/rest/pug/") == 0  # offline means no request at all


def test_assistant_settings_reach_the_tools_it_calls(fake_services, monkeypatch):
    from biomedgpt.core.settings import Settings, get_settings, reset_settings

    scoped = Settings()  # points at the loopback server (the fixture's environment)
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", "http://127.0.0.1:9")  # the process-wide settings: nothing there
    reset_settings()
    result = Assistant(settings=scoped).ask("What is the molecular weight of aspirin?")
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("pubchem_lookup", True)]
    assert "180.16 g/mol [PubChem CID 2244]" in result.answer
    assert fake_services.count("/rest/pug/") >= 1
    assert get_settings().pubchem_url == "http://127.0.0.1:9"  # the scope ended with the answer


# -- explicit services (issue 10): each Assistant uses its own, never the process-wide ones ------------------------


def _aspirin_weighs(server, weight: str) -> None:
    """Make ``server`` answer aspirin's property look-ups with ``weight`` (so answers tell the servers apart)."""
    from tests.fakeservers import PROPERTY_URI, pubchem_response

    row = {"CID": 2244, "MolecularFormula": "C9H8O4", "MolecularWeight": weight, "Title": "Aspirin",
           "SMILES": "CC(=O)OC1=CC=CC=C1C(=O)O", "InChIKey": "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"}
    inject(server, PROPERTY_URI, [pubchem_response({"PropertyTable": {"Properties": [row]}})] * 20)


def test_two_assistants_with_different_settings_each_get_answers_from_their_own_server(fake_services, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from biomedgpt.core.settings import Settings, get_settings, reset_settings

    from biomedgpt.fixtureserver import fixture_server, service_urls

    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "router")
    monkeypatch.setenv("BIOMEDGPT_HTTP__PUBCHEM_CACHE_TTL", "0")  # every question asks its server again
    with fixture_server() as other:
        first = Assistant(settings=Settings())  # the fixture's environment: the session-wide loopback server
        second = Assistant(settings=Settings(**service_urls(other)))  # a second loopback server
        _aspirin_weighs(fake_services.server, "180.16")
        _aspirin_weighs(other, "999.99")
        monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", "http://127.0.0.1:9")  # the process-wide settings: nothing there
        reset_settings()

        assert first.services is not second.services
        assert first.services.pubchem is not second.services.pubchem
        assert first.services.session("pubchem") is not second.services.session("pubchem")
        question = "What is the molecular weight of aspirin?"
        with ThreadPoolExecutor(4) as pool:  # at the same time, in threads: nothing ambient to mix up
            answers = list(pool.map(lambda assistant: assistant.ask(question).answer,
                                    [first, second, first, second]))
        assert all("180.16 g/mol [PubChem CID 2244]" in a for a in answers[0::2]), answers
        assert all("999.99 g/mol [PubChem CID 2244]" in a for a in answers[1::2]), answers
        assert other.count("/rest/pug/") >= 2 and fake_services.count("/rest/pug/") >= 2
        assert get_settings().pubchem_url == "http://127.0.0.1:9"  # untouched by either assistant
        first.close()
        second.close()


def test_services_work_outside_the_graph_and_follow_use_settings(fake_services):
    from biomedgpt.core.settings import Settings, get_settings, use_settings
    from biomedgpt.tools.langchain_tools import TOOLS_BY_NAME
    from biomedgpt.tools.services import Services, default_services

    from biomedgpt.fixtureserver import fixture_server, service_urls

    with fixture_server() as other:
        _aspirin_weighs(other, "999.99")
        elsewhere = Settings(**service_urls(other))
        with Services(elsewhere) as services:  # explicit, as the MCP server and scripts use them
            assert services.pubchem.by_name("aspirin", details=False).molecular_weight == 999.99
            text, _ = TOOLS_BY_NAME["pubchem_lookup"].func(query="aspirin", services=services)
            assert "999.99" in text
        assert other.count("/rest/pug/") >= 2 and fake_services.count("/rest/pug/") == 0
        with use_settings(elsewhere):  # the default Services follow the block's settings
            assert default_services().settings is elsewhere
            assert "999.99" in TOOLS_BY_NAME["pubchem_lookup"].invoke({"query": "aspirin"})
        assert get_settings() is not elsewhere and default_services().settings is get_settings()
        assert "180.16" in TOOLS_BY_NAME["pubchem_lookup"].invoke({"query": "aspirin"})  # outside: the process-wide


def test_no_module_level_registry_or_settings_contextvar_remains():
    """Per-run state travels in ``Services`` (issue 10); the old ambient registries are gone."""
    import contextvars
    import importlib
    import pkgutil

    import biomedgpt.agent
    import biomedgpt.core
    import biomedgpt.tools
    from biomedgpt.core import settings
    from biomedgpt.tools import biomedgpt_tool, http, langchain_tools, throttling

    assert not hasattr(http, "_SESSIONS") and not hasattr(http, "session_for") and not hasattr(http, "reset_sessions")
    assert not hasattr(throttling, "_GATES") and not hasattr(throttling, "gate_for")
    assert not hasattr(langchain_tools, "_CLIENTS") and not hasattr(langchain_tools, "_shared")
    assert not hasattr(biomedgpt_tool, "_MODELS")  # now LOADED_MODELS, keyed by (name, device, dtype)
    assert not hasattr(settings, "_ACTIVE")
    # ContextVars hold per-call state only (a look-up, a turn's request scope, a progress listener, a stop event)
    allowed = {"biomedgpt_http_call", "biomedgpt_http_scope", "biomedgpt_progress_listener", "biomedgpt_stop_event"}
    found = set()
    for package in (biomedgpt.core, biomedgpt.tools, biomedgpt.agent):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.name.endswith(("jupyter", "notebook")):
                continue
            try:
                module = importlib.import_module(info.name)
            except ImportError:  # an optional extra that is not installed
                continue
            found |= {value.name for value in vars(module).values() if isinstance(value, contextvars.ContextVar)}
    assert found <= allowed, found - allowed
