"""``core/settings.py``: the process-wide settings, ``use_settings`` and the one meaning of ``device``."""

from __future__ import annotations

import threading

from biomedgpt.core.settings import (
    Settings,
    get_settings,
    reset_settings,
    resolve_device,
    use_settings,
)


def test_auto_means_cuda_when_available_everywhere():
    import torch

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device(Settings(device="auto")) == expected
    assert resolve_device("cpu") == "cpu" and resolve_device(Settings(device="cuda:1")) == "cuda:1"
    assert resolve_device() == expected  # the process-wide setting (default auto)


def test_every_device_resolution_is_the_core_one():
    """The tools' embedding model and the BioMedGPT model resolve ``device`` through core (one meaning)."""
    from biomedgpt.tools import biomedgpt_tool, embeddings

    assert embeddings.resolve_device is resolve_device
    assert biomedgpt_tool.resolve_device is resolve_device


def test_use_settings_swaps_the_process_wide_settings_for_the_block(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", "http://127.0.0.1:1")
    reset_settings()
    outer = get_settings()
    block = Settings(pubchem_url="http://127.0.0.1:2")
    seen: list[str] = []
    with use_settings(block):
        assert get_settings() is block
        worker = threading.Thread(target=lambda: seen.append(get_settings().pubchem_url))
        worker.start()  # process-wide, not per thread: per-run settings travel in Services instead
        worker.join()
    assert seen == ["http://127.0.0.1:2"]
    assert get_settings() is outer
