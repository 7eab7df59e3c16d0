"""similar_known's PubChem neighbours go to the server of the ``Services`` in force (issue 10), never to the
process-wide settings' server: an ``Assistant(settings=...)`` and an explicit ``Services`` each reach their own
loopback server."""

from __future__ import annotations

import pytest
from biomedgpt.agent.assistant import Assistant

from tests.fakeservers import fake_services, recording_server  # noqa: F401

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
SIMILARITY = "/rest/pug/compound/fastsimilarity_2d/"


@pytest.fixture
def elsewhere(fake_services, monkeypatch):
    """A second loopback server and its settings, with the process-wide settings pointing at nothing."""
    from biomedgpt.core.settings import Settings, reset_settings

    from biomedgpt.fixtureserver import fixture_server, service_urls

    with fixture_server() as other:
        scoped = Settings(**service_urls(other))
        monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", "http://127.0.0.1:9")  # the process-wide settings: nothing there
        reset_settings()
        yield other, scoped


def test_similar_known_asks_the_pubchem_of_the_services_given(elsewhere, fake_services):
    from biomedgpt.tools.langchain_tools import TOOLS_BY_NAME
    from biomedgpt.tools.services import Services
    from biomedgpt.tools.similarity import similar_known

    other, scoped = elsewhere
    with Services(scoped) as services:
        _, hits = TOOLS_BY_NAME["similar_known"].func(smiles=ASPIRIN, k=3, services=services)
    assert other.count(SIMILARITY) == 1
    assert fake_services.count(SIMILARITY) == 0
    assert any(h["source"] == "PubChem fastsimilarity_2d" for h in hits), hits
    with Services(scoped) as services:  # the same through similar_known itself
        assert any(h.source == "PubChem fastsimilarity_2d"
                   for h in similar_known(smiles=ASPIRIN, k=3, pubchem=services.pubchem, leave_self_out=False))


def test_assistant_settings_reach_the_pubchem_similarity_search(elsewhere, fake_services, monkeypatch):
    from biomedgpt.core.settings import get_settings

    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "router")
    other, scoped = elsewhere
    assistant = Assistant(settings=scoped)
    result = assistant.ask(f"Which known molecules are similar to {ASPIRIN}?")
    assistant.close()
    assert ("similar_known", True) in [(c["name"], c["ok"]) for c in result.tool_calls]
    # the PubChem neighbours came from the Assistant's server (the process-wide one is refused: no PubChem hit)
    assert any(h["source"] == "PubChem fastsimilarity_2d" for h in result.artifacts["similar"])
    assert other.count(SIMILARITY) >= 1
    assert fake_services.count(SIMILARITY) == 0
    assert get_settings().pubchem_url == "http://127.0.0.1:9"
