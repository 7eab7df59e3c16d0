"""Pytest fixtures over the loopback PubChem/UniProt/E-utilities server: ``from tests.fakeservers import ...``.

The server, its routes (recorded bodies from ``tests/data``, provenance in ``tests/data/README.md``)
and the fault responses live in :mod:`biomedgpt.fixtureserver` (also used by ``biomedgpt eval
assistant --fixtures``); this module re-exports them and adds the pytest layer: fixtures, pointing
the settings at the server, a cold HTTP cache, and helpers for timing assertions.

Use in a test module or conftest::

    from tests.fakeservers import fake_services, recording_server  # noqa: F401  (pytest fixtures)

    def test_x(fake_services):
        PubChemClient().compound("aspirin")             # served from tests/data/pubchem
        assert fake_services.count("/rest/pug/") >= 1

``fake_services`` registers every service on one session-wide server, points ``BIOMEDGPT_*_URL`` at
it, sets small timeouts and backoffs, and empties the HTTP cache and rate-limit state so each test
starts cold. Faults: ``inject(server, uri, [busy_json(), busy_html(retry_after=1), ...])`` answers
the next requests to ``uri`` with those responses, in order, before the recorded ones resume.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from pytest_httpserver import HTTPServer

from biomedgpt.fixtureserver import (  # noqa: F401  (re-exported for the tests)
    BUSY_HTML,
    DEFAULT_DATA,
    EUTILS_PREFIX,
    GREEN,
    NAME_CIDS,
    PROPERTY_URI,
    UNIPROT_ENTRIES,
    Arrival,
    RecordingHTTPServer,
    ResettingServer,
    busy_html,
    busy_json,
    inject,
    json_response,
    load_json,
    malformed_json,
    pubchem_response,
    redirect,
    resetting_server,
    serve_all,
    serve_eutils,
    serve_pubchem,
    serve_uniprot,
    service_urls,
    stalled,
    streamed,
    throttling_header,
    too_many_requests,
    truncated,
)

DATA = DEFAULT_DATA
PUBCHEM_DATA = DATA / "pubchem"
UNIPROT_DATA = DATA / "uniprot"
EUTILS_DATA = DATA / "eutils"

# Environment for fast tests: tiny backoffs, few retries, short timeouts (all still real sleeps).
FAST_HTTP_ENV = {
    "BIOMEDGPT_HTTP__CONNECT_TIMEOUT": "2",
    "BIOMEDGPT_HTTP__READ_TIMEOUT": "3",
    "BIOMEDGPT_HTTP__MAX_RETRIES": "2",
    "BIOMEDGPT_HTTP__BACKOFF_FACTOR": "0.05",
    "BIOMEDGPT_HTTP__BACKOFF_JITTER": "0.01",
    "BIOMEDGPT_HTTP__BACKOFF_MAX": "2",
}


# ----------------------------------------------------------------------------------------------
# Timing helpers (assertions use the server's own arrival stamps)
# ----------------------------------------------------------------------------------------------


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals that fall within any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def gaps(arrivals: Sequence[Arrival]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [b.t - a.t for a, b in zip(arrivals, arrivals[1:])]


# ----------------------------------------------------------------------------------------------
# Fixtures (import them into a conftest or test module to use them)
# ----------------------------------------------------------------------------------------------


@dataclass
class FakeServices:
    """What ``fake_services`` hands a test: the server and the URLs it serves."""

    server: RecordingHTTPServer
    pubchem_url: str
    uniprot_url: str
    eutils_url: str
    env: dict = field(default_factory=dict)

    def count(self, prefix: str = "", method: str | None = None) -> int:
        return self.server.count(prefix, method)

    def requests_to(self, prefix: str = "", method: str | None = None) -> list[Arrival]:
        return self.server.requests_to(prefix, method)


def point_settings_at(monkeypatch: pytest.MonkeyPatch, server: HTTPServer, fast: bool = True) -> dict:
    """Point every service URL at ``server`` (and use fast timeouts/backoffs); returns the variables set."""
    urls = service_urls(server)
    env = {
        "BIOMEDGPT_PUBCHEM_URL": urls["pubchem_url"],
        "BIOMEDGPT_UNIPROT_URL": urls["uniprot_url"],
        "BIOMEDGPT_EUTILS_URL": urls["eutils_url"],
        **(FAST_HTTP_ENV if fast else {}),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BIOMEDGPT_OFFLINE", raising=False)
    return env


def clear_http_state() -> None:
    """Close the default services; forget the shared rate-limit/throttle state and the HTTP cache file of the current settings."""
    from biomedgpt.core.settings import get_settings, reset_settings
    from biomedgpt.tools.http import CACHE_FILE
    from biomedgpt.tools.services import reset_services
    from biomedgpt.tools.throttling import RATE_FILE

    reset_services()
    reset_settings()
    home = get_settings().home
    for pattern in (f"{CACHE_FILE}*", f"{RATE_FILE}*"):
        for path in home.glob(pattern):
            path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def recording_server() -> Iterator[RecordingHTTPServer]:
    server = RecordingHTTPServer()
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def fake_services(recording_server: RecordingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServices]:
    """All three services on the session server, with a cold cache and fresh rate-limit state."""
    recording_server.clear()
    serve_all(recording_server, DATA)
    env = point_settings_at(monkeypatch, recording_server)
    clear_http_state()
    urls = service_urls(recording_server)
    yield FakeServices(recording_server, urls["pubchem_url"], urls["uniprot_url"], urls["eutils_url"], env)
    clear_http_state()
    recording_server.clear()
