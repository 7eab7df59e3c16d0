"""Checkpoints: ``load_official("biomedgpt_10b.pth", lm_dir, esm_dir)`` and our own ``save_pretrained`` / ``load_pretrained``.

The official file (OpenBioMed v1, saved with transformers 4.x in fp16) is ONE state dict with the
prefixes ``mol_structure_encoder.`` (GraphMVP names), ``prot_structure_encoder.`` (HF ``EsmModel``),
``llm.`` (HF ``LlamaForCausalLM``, 32001 rows: BioMedGPT-LM-7B's tokenizer + ``[PAD]``), ``proj_mol.`` and
``proj_prot.``. We tolerate exactly what transformers changed since: ``*.position_ids`` and ``*inv_freq``
keys may be present or absent (per-layer rotary buffers became one per model); these buffers are
recomputed from the configs. Any other missing or unexpected key is a ``CheckpointError`` listing them.

Why meta device + mmap + ``assign=True``: the file is about 20 GB and machines may have 24 GiB. The
model is built without storage, the file is memory-mapped, and its tensors become the parameters
(no second copy); only the recomputed buffers are allocated.

Our own format is a folder: ``config.json`` (``BioMedGPTConfig`` + what is stored),
``model.safetensors`` (encoders + adaptors) and, for a model trained with LoRA on its LM
(``config.lora``), ``lora.safetensors`` (the adapters, ``model/lora.py``), merged into the LM at load;
the LM is referenced by its source (the embedded SmolLM2 stays out of shipped weights) unless it
cannot be rebuilt from it (the random tiny LM), in which case it is saved under ``llm/``.
Writes go to a temporary folder that is renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from biomedgpt.core.errors import CheckpointError
from biomedgpt.core.files import SUMS_FILE, atomic_dir, verify_sha256sums
from biomedgpt.model.biomedgpt import BioMedGPT
from biomedgpt.model.config import BioMedGPTConfig, get_preset
from biomedgpt.model.lm import ensure_pad_token, load_lm, resolve_dtype
from biomedgpt.model.lora import (
    ADAPTER_FILE, add_lora, base_state_dict, has_lora, load_adapters, read_adapters, save_adapters,
)
from biomedgpt.model.lora import merge_lora as merge_lora_into

FORMAT_NAME = "biomedgpt"
FORMAT_VERSION = 1
_TOLERATED_SUFFIXES = ("position_ids", "inv_freq")


def _tolerated(key: str) -> bool:
    return key.endswith(_TOLERATED_SUFFIXES)


def _list_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_keys(expected: set[str], found: set[str], where: str) -> None:
    """Raise ``CheckpointError`` naming missing/unexpected keys, ignoring the tolerated buffers."""
    missing = sorted(k for k in expected - found if not _tolerated(k))
    unexpected = sorted(k for k in found - expected if not _tolerated(k))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_list_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_list_keys(unexpected)}")
        raise CheckpointError(f"{where} does not match the model: " + "; ".join(parts))


def materialise_buffers(model: nn.Module, device: str | torch.device = "cpu") -> None:
    """Allocate buffers still on the meta device: rotary ``inv_freq`` (recomputed from the module's config)
    and ``position_ids`` (0..n-1). Anything else left on meta is a ``CheckpointError``."""
    for name, module in model.named_modules():
        meta = [b for b, value in module.named_buffers(recurse=False) if value is not None and value.is_meta]
        if not meta:
            continue
        config = getattr(module, "config", None)
        if any(b.endswith("inv_freq") for b in meta) and config is not None:
            with torch.device(device):
                fresh = type(module)(config)  # HF rotary modules compute their buffers from the config
            for buffer in meta:
                module._buffers[buffer] = fresh._buffers[buffer]
            continue
        for buffer in meta:
            if buffer == "position_ids":
                shape = module._buffers[buffer].shape
                module._buffers[buffer] = torch.arange(shape[-1], device=device).expand(shape)
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"these tensors were neither in the checkpoint nor recomputable: {_list_keys(left)}")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), dict):
        obj = next(iter(obj.values()))  # {"model": state_dict} wrappers
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return obj


def load_official(
    checkpoint: str | Path,
    lm_dir: str | Path,
    esm_dir: str | Path,
    dtype: torch.dtype | str = torch.float16,
    device: str | torch.device = "cpu",
) -> Any:
    """The released BioMedGPT-10B from ``biomedgpt_10b.pth`` + a BioMedGPT-LM-7B folder + an esm2-3b config folder."""
    from transformers import AutoTokenizer, EsmConfig, LlamaConfig, LlamaForCausalLM  # deferred: transformers

    from biomedgpt.model.protein import HFEsmEncoder  # deferred: fair-esm and transformers

    checkpoint, lm_dir, esm_dir = Path(checkpoint), Path(lm_dir), Path(esm_dir)
    if not checkpoint.is_file():
        raise CheckpointError(f"checkpoint {checkpoint} not found")
    for folder, what in ((lm_dir, "BioMedGPT-LM-7B"), (esm_dir, "ESM-2 3B")):
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{what} folder {folder} has no config.json")
    torch_dtype = resolve_dtype(dtype, device)

    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    lm_config = LlamaConfig.from_pretrained(lm_dir)
    esm_config = EsmConfig.from_pretrained(esm_dir)
    config = get_preset("biomedgpt-10b")
    config.lm.source = str(lm_dir)
    config.lm.dtype = str(torch_dtype).removeprefix("torch.")
    config.protein.num_layers = esm_config.num_hidden_layers
    config.protein.hidden_size = esm_config.hidden_size
    config.protein.num_heads = esm_config.num_attention_heads
    config.protein.intermediate_size = esm_config.intermediate_size
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": config.pad_token})
    lm_config.vocab_size = len(tokenizer)  # 32000 + [PAD]

    state = _read_state_dict(checkpoint)
    mol_keys = [k for k in state if k.startswith("mol_structure_encoder.x_embedding1.weight")]
    if mol_keys:  # the GIN width and depth come from the file (GraphMVP is 300 x 5)
        config.molecule.emb_dim = int(state[mol_keys[0]].shape[1])
        config.molecule.num_layer = len({k.split(".")[2] for k in state if k.startswith("mol_structure_encoder.gnns.")})

    with torch.device("meta"):
        llm = LlamaForCausalLM(lm_config)
        model = BioMedGPT(config, llm, tokenizer, prot_encoder=HFEsmEncoder(esm_config))

    expected = model.state_dict()
    check_keys(set(expected), set(state), f"checkpoint {checkpoint}")
    mismatched = [
        f"{k} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
        for k, v in state.items() if k in expected and not _tolerated(k) and v.shape != expected[k].shape
    ]
    if mismatched:
        raise CheckpointError(f"checkpoint {checkpoint} has tensors of the wrong shape: {_list_keys(mismatched)}")
    weights = {
        k: (v.to(torch_dtype) if v.is_floating_point() else v)
        for k, v in state.items() if not _tolerated(k)
    }
    model.load_state_dict(weights, strict=False, assign=True)
    del state, weights
    if getattr(model.llm.config, "tie_word_embeddings", False):
        model.llm.tie_weights()
    materialise_buffers(model, "cpu")
    model.config.trained = True
    return model.to(device).eval()


# ------------------------------------------------------------------------------------ own format
def save_pretrained(model: Any, folder: str | Path, *, include_lm: bool | None = None) -> Path:
    """Save encoders + adaptors (safetensors) and the config; the LM's LoRA adapters (``lora.safetensors``)
    when it has them; the LM too when ``include_lm``.

    ``include_lm=None`` saves the LM only when it cannot be rebuilt from its source: the "tiny" LM is
    random, so it is saved (its own weights, without the adapters); "smollm2" and LM folders are
    referenced, keeping shipped weights small. Adapters and ``config.lora`` must agree (both or neither).
    """
    folder = Path(folder)
    if include_lm is None:
        include_lm = model.config.lm.source == "tiny"
    adapted = has_lora(model.llm)
    if adapted != (model.config.lora is not None):
        raise CheckpointError("the LM's LoRA layers and config.lora disagree: " +
                              ("the LM has adapters but config.lora is None" if adapted else
                               "config.lora is set but the LM has no adapters (merged at load? load with "
                               "merge_lora=False to save the model again)"))
    with atomic_dir(folder) as tmp:
        tensors = {
            k: v.detach().to("cpu").contiguous().clone()
            for k, v in model.state_dict().items() if not k.startswith("llm.")
        }
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": FORMAT_NAME})
        if adapted:
            save_adapters(model.llm, tmp / ADAPTER_FILE)
        if include_lm:
            model.llm.save_pretrained(tmp / "llm", state_dict=base_state_dict(model.llm) if adapted else None)
            model.tokenizer.save_pretrained(tmp / "llm")
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "lm": "llm" if include_lm else "source",
            "config": model.config.to_dict(),
        }
        (tmp / "config.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a saved BioMedGPT model (no config.json)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if manifest.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a BioMedGPT model config (format={manifest.get('format')!r})")
    return manifest


def load_pretrained(
    folder: str | Path, *, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
    merge_lora: bool = True,
) -> Any:
    """A model saved by ``save_pretrained`` (keys checked exactly; the LM from ``llm/`` or its source).

    A folder with a ``SHA256SUMS`` file (the shipped ``model/weights/*``, ``export-weights`` output) is checked
    against it first: a corrupted file is a ``CheckpointError`` naming it, before any weight is read; a
    model with LoRA adapters (``config.lora``) must list ``lora.safetensors`` there too.

    LoRA adapters are merged into the LM's weights (``model/lora.merge_lora``; no peft import), so
    ``model.llm`` is a plain LM. ``merge_lora=False`` (training that continues them) injects peft LoRA
    layers holding the saved adapters instead.
    """
    folder = Path(folder)
    # shipped and exported folders: checked before anything is read
    sums = verify_sha256sums(folder) if (folder / SUMS_FILE).is_file() else None
    manifest = read_manifest(folder)
    config = BioMedGPTConfig.from_dict(manifest["config"])
    if sums is not None and config.lora is not None and ADAPTER_FILE not in sums:
        raise CheckpointError(f"{folder / ADAPTER_FILE} is not covered by {folder / SUMS_FILE}; re-export the weights")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{folder} has no model.safetensors")
    adapters_path = folder / ADAPTER_FILE
    if config.lora is not None and not adapters_path.is_file():
        raise CheckpointError(f"{folder}: config.lora is set but {ADAPTER_FILE} is missing")
    torch_dtype = resolve_dtype(dtype if dtype is not None else config.lm.dtype, device)
    lm_source = str(folder / "llm") if manifest.get("lm") == "llm" else config.lm
    llm, tokenizer = load_lm(lm_source, torch_dtype)
    ensure_pad_token(llm, tokenizer, config.pad_token)
    model = BioMedGPT(config, llm, tokenizer)
    try:
        state = load_file(str(weights))
    except Exception as error:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"cannot read {weights}: {error}") from None
    expected = {k for k in model.state_dict() if not k.startswith("llm.")}
    check_keys(expected, set(state), str(weights))
    model.load_state_dict(state, strict=False)
    if config.lora is not None:
        adapters = read_adapters(adapters_path)
        if merge_lora:
            merge_lora_into(model.llm, adapters, config.lora, str(adapters_path))
        else:
            add_lora(model.llm, config.lora)
            load_adapters(model.llm, adapters, config.lora, str(adapters_path))
    return model.to(device=device, dtype=torch_dtype).eval()
