"""Weights for the generation loop, fp32 or int8: ``matmul = weight_matmul(W, "int8")``; ``matmul(x)`` is ``x @ W.T``.

Why int8: decoding one token reads every weight of the LM once, so its speed is memory bandwidth divided by the
bytes per weight. Symmetric int8 rows with one scale per output channel (like llama.cpp's Q8_0, per row instead
of per 32 values) read a quarter of fp32's bytes and change the ChEBI-20 metrics of the mini model by less than
0.01 (``model/cards/mini.md``). The matmul is aten's ``_weight_int8pack_mm``, the CPU kernel gpt-fast and torchao
use for weight-only int8. It is fast only with bf16 activations on CPUs that compute bf16 natively (AVX-512 BF16
or AMX): with fp32 activations it runs a scalar path about 15x slower than an fp32 matmul, and bf16 emulated on
AVX2 is 2.5-5x slower than fp32. So ``auto`` means int8 only where :func:`fast_bf16` holds; elsewhere the weights
stay fp32 and the activations fp32. The residual stream, norms, rotary embeddings and attention stay fp32 either
way: only each matmul's input row is rounded to bf16.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from biomedgpt.core.errors import ConfigError

#: The weight formats of the generation loop (``lm_weights`` setting): ``auto`` is int8 where it is fast.
WEIGHT_FORMATS = ("auto", "int8", "fp32")


def fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX tiles), which the int8 kernel needs."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and bool(probe()) for probe in probes)


def resolve_weight_format(name: str, device: torch.device | str = "cpu") -> str:
    """``int8`` or ``fp32`` for ``name`` on ``device``: ``auto`` is int8 on a CPU with native bf16, else the LM's own
    dtype ("fp32" here means "as loaded"); an explicit ``int8`` elsewhere than such a CPU is an error that says why."""
    if name not in WEIGHT_FORMATS:
        raise ConfigError(f"lm_weights {name!r} is not one of {', '.join(WEIGHT_FORMATS)}")
    on_cpu = torch.device(device).type == "cpu"
    if name == "auto":
        return "int8" if on_cpu and fast_bf16() else "fp32"
    if name == "int8" and not (on_cpu and fast_bf16()):
        where = "a GPU" if not on_cpu else "a CPU without AVX-512 BF16 or AMX"
        raise ConfigError(f"lm_weights int8 runs on CPUs with native bf16 only; this is {where} "
                          "(use lm_weights auto or fp32)")
    return name


def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """``(int8 [out, in], scale [out])`` with ``weight ≈ int8 * scale[:, None]``: symmetric, one scale per row
    (the largest magnitude maps to 127), rounded to nearest."""
    w = weight.detach().float()
    scale = torch.linalg.vector_norm(w, float("inf"), dim=1).clamp_(min=1e-12).div_(127.0)
    return torch.div(w, scale[:, None]).round_().clamp_(-127, 127).to(torch.int8), scale


class Int8Matmul:
    """``x @ W.T`` with W stored as int8 rows and bf16 scales; any float in, bf16 out. Several weights given are
    stacked as one (fused projections), each quantized on its own (one scale per row either way)."""

    def __init__(self, *weights: Tensor) -> None:
        parts = [quantize_rows(weight) for weight in weights]
        self.weight = torch.cat([q for q, _ in parts]) if len(parts) > 1 else parts[0][0]
        self.scale = torch.cat([scale for _, scale in parts]).to(torch.bfloat16)
        self.out_features = self.weight.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        """bf16 out: the caller adds it to its fp32 stream (promotion is free there) or feeds the next matmul."""
        rows = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        return torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scale).reshape(*x.shape[:-1], self.out_features)


class DenseMatmul:
    """``x @ W.T`` with W as it was loaded (one weight: a detached view, no copy; several: stacked); out in W's dtype."""

    def __init__(self, *weights: Tensor) -> None:
        self.weight = torch.cat([w.detach() for w in weights]) if len(weights) > 1 else weights[0].detach()

    def __call__(self, x: Tensor) -> Tensor:
        return F.linear(x.to(self.weight.dtype), self.weight)


def weight_matmul(*weights: Tensor, fmt: str) -> Callable[[Tensor], Tensor]:
    """The matmul for ``weights`` (stacked when several) in format ``fmt`` (``int8`` | ``fp32``, from
    :func:`resolve_weight_format`)."""
    return Int8Matmul(*weights) if fmt == "int8" else DenseMatmul(*weights)


def weight_bytes(matmul: Callable[[Tensor], Tensor]) -> int:
    """Bytes one call reads from the weights (what bounds a decoding step)."""
    if isinstance(matmul, Int8Matmul):
        return matmul.weight.numel() + matmul.scale.numel() * 2
    weight = matmul.weight  # type: ignore[attr-defined]
    return weight.numel() * weight.element_size()
