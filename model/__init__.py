"""biomedgpt.model: the BioMedGPT architecture (GIN + ESM-2 + adaptors + Llama-family LM).

Use::

    from biomedgpt.model import load_model, load_official, featurize_smiles
    model = load_model("mini")          # "tiny" for tests, or a folder saved by save_pretrained
    model.ask("What is this molecule?", smiles="CN1C=NC2=C1C(=O)N(C(=O)N2C)C")
    model.config.trained                # True with the shipped weights (model/weights/mini, model/cards/mini.md)

Names are loaded lazily (PEP 562) so importing the package does not import torch-geometric,
transformers or RDKit until used. This package imports nothing from tools/, training/ or agent/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.lazy import lazy_attributes
from biomedgpt.core.settings import resolve_device

_LAZY = {
    "featurize_smiles": ("biomedgpt.model.molecule", "featurize_smiles"),
    "GINEncoder": ("biomedgpt.model.molecule", "GINEncoder"),
    "BioMedGPT": ("biomedgpt.model.biomedgpt", "BioMedGPT"),
    "BioMedGPTConfig": ("biomedgpt.model.config", "BioMedGPTConfig"),
    "get_preset": ("biomedgpt.model.config", "get_preset"),
    "PRESETS": ("biomedgpt.model.config", "PRESETS"),
    "load_official": ("biomedgpt.model.checkpoint", "load_official"),
    "save_pretrained": ("biomedgpt.model.checkpoint", "save_pretrained"),
    "load_pretrained": ("biomedgpt.model.checkpoint", "load_pretrained"),
    "LoRAConfig": ("biomedgpt.model.config", "LoRAConfig"),
    "load_lm": ("biomedgpt.model.lm", "load_lm"),
    "load_text_chat_model": ("biomedgpt.model.lm", "load_text_chat_model"),
    "weights_report": ("biomedgpt.model.weights", "weights_report"),
}

__all__ = ["load_model", *_LAZY]


__getattr__ = lazy_attributes(__name__, _LAZY)


def load_model(name_or_path: str = "mini", *, device: str = "cpu", dtype: Any = None, merge_lora: bool = True) -> Any:
    """A ready ``BioMedGPT`` in eval mode: "mini", "tiny", or a folder saved by ``save_pretrained``.

    "mini" uses the shipped trained encoders when the package has them; otherwise they are freshly
    initialised with a fixed seed and ``model.config.trained`` is False. ``device="auto"`` is CUDA when torch
    sees a GPU, else CPU (``core.settings.resolve_device``, the one meaning of "auto"). ``dtype`` None means
    float32 on CPU and bfloat16 on CUDA. The released 10B model loads with ``load_official`` instead.
    A saved model with LoRA adapters on its LM gets them merged into the LM's weights (``model.llm`` is
    a plain LM); ``merge_lora=False`` keeps them as trainable peft layers (``load_pretrained``; training).
    """
    # deferred: the package stays import-free (torch, transformers load with the first model)
    from biomedgpt.model.checkpoint import load_pretrained
    from biomedgpt.model.config import PRESETS, get_preset
    from biomedgpt.model.lm import load_lm, resolve_dtype
    from biomedgpt.model.weights import mini_weights_dir, shipped_mini_available

    device = resolve_device(device)
    if name_or_path == "biomedgpt-10b":
        raise ConfigError("the biomedgpt-10b preset loads from the released files: use "
                          "load_official(checkpoint, lm_dir, esm_dir)")
    if name_or_path == "mini" and shipped_mini_available():
        return load_pretrained(mini_weights_dir(), device=device, dtype=dtype, merge_lora=merge_lora)
    if name_or_path in PRESETS:
        from biomedgpt.model.biomedgpt import BioMedGPT  # deferred: see above

        config = get_preset(name_or_path)
        torch_dtype = resolve_dtype(dtype if dtype is not None else config.lm.dtype, device)
        llm, tokenizer = load_lm(config.lm, torch_dtype)
        model = BioMedGPT(config, llm, tokenizer)
        return model.to(device=device, dtype=torch_dtype).eval()
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return load_pretrained(path, device=device, dtype=dtype, merge_lora=merge_lora)
    known = ", ".join(p for p in PRESETS if p != "biomedgpt-10b")
    raise ConfigError(f"unknown model {name_or_path!r}: not a preset ({known}) and not a saved model folder")
