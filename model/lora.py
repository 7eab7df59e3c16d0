"""LoRA adapters on the language model: ``add_lora(llm, config)`` to train them, ``merge_lora(llm, adapters, config)`` at load.

Why (issue 15): with the LM frozen, the mini model mostly copies the neighbour's description it is given;
LoRA on SmolLM2's attention and MLP projections lets the LM learn to edit it (LLaVA's stage 2, MolCA),
while what ships stays small: only each adapted layer's ``A`` (r × in) and ``B`` (out × r) are saved, in
``lora.safetensors`` next to the encoders, and the LM itself is rebuilt from its source.

Training injects peft's LoRA layers in place (``peft.inject_adapter_in_model``): ``model.llm`` stays a
``LlamaForCausalLM`` whose targeted ``nn.Linear`` modules become peft ``Linear`` wrappers (the base weight
under ``base_layer``, the adapter under ``lora_A.default`` / ``lora_B.default``). peft is imported only
there. Loading does not need it: ``merge_lora`` adds each delta by hand, ``W += (B @ A) · alpha / r`` in
float32 and cast to ``W``'s dtype (peft's own ``merge`` for plain LoRA, no rsLoRA/DoRA), so an inference
process does not pay peft's import (about 3 s cold) and ``model.llm`` is a plain ``LlamaForCausalLM``
whose linear layers later steps (quantisation) see as ordinary ``nn.Linear``.

File layout: keys ``<module path in the LM>.lora_A.weight`` and ``.lora_B.weight`` (the names peft's
``get_peft_model_state_dict`` gives, without the adapter name), e.g.
``model.layers.0.self_attn.q_proj.lora_A.weight``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from biomedgpt.core.errors import CheckpointError, ConfigError
from biomedgpt.model.config import LoRAConfig

ADAPTER_FILE = "lora.safetensors"
ADAPTER_NAME = "default"  # peft's name for the one adapter
_PARTS = ("lora_A", "lora_B")


def add_lora(llm: nn.Module, config: LoRAConfig) -> int:
    """Inject fresh, trainable LoRA layers (peft: ``A`` Kaiming-uniform, ``B`` zero, so the LM's output is
    unchanged until it trains) into ``llm`` in place; returns how many layers got one. A module list that
    matches nothing is a ``ConfigError`` naming it."""
    from peft import LoraConfig, inject_adapter_in_model  # deferred: ~3 s cold; training only

    if has_lora(llm):
        raise ConfigError("the LM already holds LoRA adapters; one adapter per LM")
    peft_config = LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                             target_modules=list(config.target_modules), bias="none")
    try:
        inject_adapter_in_model(peft_config, llm, adapter_name=ADAPTER_NAME)
    except ValueError as error:  # peft: "Target modules ... not found in the base model"
        raise ConfigError(f"lora.target_modules {list(config.target_modules)}: {error}") from None
    return len(lora_modules(llm))


def lora_modules(llm: nn.Module) -> dict[str, nn.Module]:
    """``{module path: peft LoRA layer}`` of the adapted layers of ``llm`` (empty without adapters)."""
    return {name: module for name, module in llm.named_modules()
            if isinstance(getattr(module, "lora_A", None), nn.ModuleDict) and ADAPTER_NAME in module.lora_A}


def has_lora(llm: nn.Module) -> bool:
    return bool(lora_modules(llm))


def lora_parameters(llm: nn.Module) -> list[nn.Parameter]:
    """The adapter weights (``A`` and ``B`` of every adapted layer): what LoRA training optimises."""
    return [p for module in lora_modules(llm).values() for part in _PARTS
            for p in getattr(module, part)[ADAPTER_NAME].parameters()]


def set_lora_dropout(llm: nn.Module, p: float) -> None:
    """Use dropout ``p`` on every adapter's input from now on (a run continuing saved adapters may change it)."""
    for module in lora_modules(llm).values():
        module.lora_dropout[ADAPTER_NAME] = nn.Dropout(p) if p > 0 else nn.Identity()


def lora_state_dict(llm: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters of ``llm`` as CPU tensors, keyed as in ``lora.safetensors`` (module doc)."""
    return {f"{name}.{part}.weight": getattr(module, part)[ADAPTER_NAME].weight.detach().to("cpu").contiguous().clone()
            for name, module in lora_modules(llm).items() for part in _PARTS}


def base_state_dict(llm: nn.Module) -> dict[str, torch.Tensor]:
    """``llm``'s own weights under their names without adapters (``…q_proj.weight``, not ``…base_layer.weight``):
    what ``llm.save_pretrained`` must write so the folder loads as a plain LM; the adapters are saved apart."""
    return {key.replace(".base_layer.", "."): value for key, value in llm.state_dict().items()
            if not any(f".{part}." in key for part in _PARTS)}


def save_adapters(llm: nn.Module, path: str | Path) -> Path:
    """Write ``lora_state_dict(llm)`` to ``path`` (safetensors)."""
    save_file(lora_state_dict(llm), str(path), metadata={"format": "biomedgpt-lora"})
    return Path(path)


def read_adapters(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``lora.safetensors`` file; unreadable is a ``CheckpointError`` naming it."""
    try:
        return load_file(str(path))
    except Exception as error:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"cannot read the LoRA adapters {path}: {error}") from None


def _pairs(adapters: dict[str, torch.Tensor], where: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{module path: (A, B)}``; a key of another shape or a half pair is a ``CheckpointError``."""
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in adapters.items():
        module, _, part = key.removesuffix(".weight").rpartition(".")
        if not key.endswith(".weight") or part not in _PARTS or not module:
            raise CheckpointError(f"{where}: {key!r} is not a LoRA weight (<module>.lora_A.weight / .lora_B.weight)")
        halves.setdefault(module, {})[part] = value
    broken = sorted(m for m, h in halves.items() if set(h) != set(_PARTS))
    if broken:
        raise CheckpointError(f"{where}: these layers lack lora_A or lora_B: {', '.join(broken[:10])}")
    return {module: (h["lora_A"], h["lora_B"]) for module, h in halves.items()}


def _check_shapes(name: str, weight: torch.Tensor, a: torch.Tensor, b: torch.Tensor, config: LoRAConfig,
                  where: str) -> None:
    out_features, in_features = weight.shape
    if tuple(a.shape) != (config.r, in_features) or tuple(b.shape) != (out_features, config.r):
        raise CheckpointError(f"{where}: {name} has A {tuple(a.shape)} and B {tuple(b.shape)}; the layer "
                              f"({out_features} x {in_features}) with r={config.r} needs A ({config.r}, "
                              f"{in_features}) and B ({out_features}, {config.r})")


@torch.no_grad()
def merge_lora(llm: nn.Module, adapters: dict[str, torch.Tensor], config: LoRAConfig, where: str = "adapters") -> int:
    """Add every adapter's delta into the plain ``nn.Linear`` it belongs to: ``W += (B @ A) · alpha / r``
    (computed in float32, cast to ``W``'s dtype). ``llm`` stays a plain model; no peft import. Returns the
    number of layers merged; a layer that is missing, not an ``nn.Linear``, or of another shape is a
    ``CheckpointError``."""
    targets = []
    for name, (a, b) in _pairs(adapters, where).items():
        try:
            module = llm.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"{where}: the LM has no layer {name!r}") from None
        if type(module) is not nn.Linear:
            raise CheckpointError(f"{where}: {name} is a {type(module).__name__}, not a plain nn.Linear")
        _check_shapes(name, module.weight, a, b, config, where)
        targets.append((module.weight, a, b))
    # One thread: each product has an inner size of r (16), far too small to share, and an OpenMP barrier per
    # product cost ~15 ms instead of ~0.3 ms on a 2-core machine whose other core was busy (210 products at load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for weight, a, b in targets:
            delta = (b.to(torch.float32) @ a.to(torch.float32)) * config.scaling
            weight += delta.to(device=weight.device, dtype=weight.dtype)
    finally:
        torch.set_num_threads(threads)
    return len(targets)


@torch.no_grad()
def load_adapters(llm: nn.Module, adapters: dict[str, torch.Tensor], config: LoRAConfig,
                  where: str = "adapters") -> None:
    """Copy saved adapters into ``llm``'s LoRA layers (``add_lora`` first), to continue training them; the
    saved layers must be exactly the injected ones (``CheckpointError`` naming the difference)."""
    pairs = _pairs(adapters, where)
    modules = lora_modules(llm)
    missing, unexpected = sorted(set(modules) - set(pairs)), sorted(set(pairs) - set(modules))
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match the LM's LoRA layers (missing: {missing[:5]}, "
                              f"unexpected: {unexpected[:5]})")
    for name, (a, b) in pairs.items():
        module = modules[name]
        _check_shapes(name, module.base_layer.weight, a, b, config, where)
        for part, value in zip(_PARTS, (a, b)):
            target = getattr(module, part)[ADAPTER_NAME].weight
            target.copy_(value.to(device=target.device, dtype=target.dtype))
