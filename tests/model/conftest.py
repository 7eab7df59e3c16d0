"""Fixtures for model/ tests: one tiny BioMedGPT per module (random weights, built in about a second)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny_model():
    from biomedgpt.model import load_model

    return load_model("tiny")
