"""Agent tests use the tiny model preset (fast, random weights) wherever the model answers."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIOMEDGPT_MODEL", "tiny")
