"""Shared test set-up: one session-scoped BIOMEDGPT_HOME and an empty config file.

Why session-scoped: the one-time SmolLM2 GGUF → safetensors conversion then happens once per run.
Everything is offline; loopback servers are started by the tests that need them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME_HOLDER: dict[str, Path] = {}


def pytest_configure(config: pytest.Config) -> None:
    # Set before any test module imports biomedgpt, so cached settings see the test home.
    base = Path(tempfile.mkdtemp(prefix="biomedgpt-tests-"))
    home = base / "home"
    home.mkdir()
    cfg = base / "config.toml"
    cfg.write_text("")
    os.environ["BIOMEDGPT_HOME"] = str(home)
    os.environ["BIOMEDGPT_CONFIG"] = str(cfg)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    for name in list(os.environ):
        if name.startswith("BIOMEDGPT_") and name not in ("BIOMEDGPT_HOME", "BIOMEDGPT_CONFIG"):
            del os.environ[name]
    _HOME_HOLDER["home"] = home
    _HOME_HOLDER["config"] = cfg


@pytest.fixture(scope="session")
def biomedgpt_home() -> Path:
    """The session's BIOMEDGPT_HOME (shared caches such as the converted SmolLM2)."""
    return _HOME_HOLDER["home"]


@pytest.fixture(autouse=True)
def _fresh_settings():
    """Each test sees settings rebuilt from its own environment."""
    from biomedgpt.core.settings import reset_settings

    reset_settings()
    yield
    reset_settings()


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    home = _HOME_HOLDER.get("home")
    if home is not None:
        shutil.rmtree(home.parent, ignore_errors=True)
