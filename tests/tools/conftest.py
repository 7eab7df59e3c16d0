"""Fixtures for the HTTP-layer and client tests: ``pytest tests/tools``.

The loopback server and its routes live in ``tests/fakeservers.py`` (shared with the agent's tests);
this file only re-exports its fixtures and adds a recorder for progress messages.
"""

from __future__ import annotations

import pytest

from tests.fakeservers import fake_services, recording_server  # noqa: F401  (pytest fixtures)


class ProgressLog(list):
    """Every ``report(...)`` call made while the test runs, as ``(message, data)`` pairs."""

    def messages(self) -> list[str]:
        return [message for message, _ in self]


@pytest.fixture
def progress():
    from biomedgpt.tools.progress import listen

    log = ProgressLog()
    with listen(lambda message, **data: log.append((message, data))):
        yield log


@pytest.fixture
def http_env(monkeypatch, fake_services):
    """Set ``BIOMEDGPT_HTTP__*`` knobs for one test and start from fresh default services."""
    from biomedgpt.core.settings import reset_settings
    from biomedgpt.tools.services import reset_services

    def apply(**knobs):
        for name, value in knobs.items():
            monkeypatch.setenv(f"BIOMEDGPT_HTTP__{name.upper()}", str(value))
        reset_settings()
        reset_services()

    return apply
