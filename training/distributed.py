"""One process or many: ``env = init_distributed(); model = wrap_model(model, "ddp", env)``.

Run any trainer under ``torchrun --nproc_per_node N -m biomedgpt.cli train lm --config ...``; without
torchrun (no ``WORLD_SIZE`` in the environment) everything runs in this process and the helpers below
are no-ops. The backend is gloo on CPU and nccl on CUDA.

Strategies:
- ``ddp``: ``DistributedDataParallel``; gradients averaged across processes.
- ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) per decoder layer and on the input
  embedding, then the root; with bf16 a ``MixedPrecisionPolicy`` (bf16 params/compute, fp32 gradient
  reduction). For BioMedGPT only the LM is sharded; encoders and adaptors are replicated with their
  gradients averaged (``sync_replicated_grads``). This is the paper's large-model path
  (BioMedGPT-LM-7B/10B). Verified on CPU with gloo (torch 2.13): the tests compare a 2-process run
  with the single-process losses. The CUDA/nccl/bf16 path has not been run on a GPU yet.
- ``auto``: ``ddp`` when several processes run, otherwise none. ``ddp``/``fsdp`` in one process run
  unwrapped (there is nothing to replicate or shard).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import resolve_device


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank, world size and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA when torch sees a GPU, else CPU (``core.settings.resolve_device``, the one meaning of
    "auto"); a CUDA device without an index is this process's GPU (``cuda:<local_rank>``)."""
    device = torch.device(resolve_device(requested))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group described by torchrun's variables (``RANK``, ``WORLD_SIZE``...)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return DistEnv(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (a copy; the input is untouched)."""
    value = value.detach().clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def resolve_strategy(strategy: str, env: DistEnv) -> str:
    """``auto`` → ``ddp`` with several processes, ``single`` otherwise."""
    if strategy == "auto":
        return "ddp" if env.distributed else "single"
    if strategy in ("ddp", "fsdp") and not env.distributed:
        return "single"  # one process: nothing to replicate or shard
    if strategy == "single" and env.distributed:
        raise ConfigError(f"strategy 'single' cannot run in {env.world_size} processes; use ddp or fsdp")
    return strategy


def _decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks to shard one by one (HF ``*DecoderLayer`` / ESM ``TransformerLayer``)."""
    return [m for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "TransformerLayer"))]


def wrap_model(model: nn.Module, strategy: str, env: DistEnv, bf16: bool = False) -> nn.Module:
    """Wrap ``model`` (already on ``env.device``) for ``strategy``: ``single``, ``ddp`` or ``fsdp``."""
    strategy = resolve_strategy(strategy, env)
    if strategy == "single":
        return model
    if strategy == "ddp":
        ids = [env.device.index] if env.device.type == "cuda" else None
        # find_unused_parameters: a molecule-only micro-batch leaves the protein adaptor unused.
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=_has_optional_branches(model))
    if strategy == "fsdp":
        # deferred: FSDP costs ~0.6 s to import, and these exist only where torch has distributed support
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else MixedPrecisionPolicy()
        # A multimodal model shards only its LM (the big part, run on every sample); the encoders and
        # adaptors stay replicated (``ignored_params``) because a rank whose micro-batch has no
        # protein skips ESM-2, and sharded parameters need every rank in every collective. Their
        # gradients are averaged by ``sync_replicated_grads``. The whole model stays the FSDP root, so
        # its forward (which calls the LM's embedding to splice features) starts the all-gathers.
        lm = model.llm if isinstance(getattr(model, "llm", None), nn.Module) else model
        units = _decoder_layers(lm)
        if hasattr(lm, "get_input_embeddings"):
            units.append(lm.get_input_embeddings())
        for unit in units:
            fully_shard(unit, mesh=mesh, mp_policy=policy)
        lm_params = {id(p) for p in lm.parameters()}
        replicated = {p for p in model.parameters() if id(p) not in lm_params}
        fully_shard(model, mesh=mesh, mp_policy=policy, ignored_params=replicated or None)
        return model
    raise ConfigError(f"unknown strategy {strategy!r}; choose auto, single, ddp or fsdp")


def sync_replicated_grads(model: nn.Module) -> None:
    """Average the gradients of trainable parameters that FSDP does not shard (plain tensors).

    A parameter unused on this rank (no protein in its micro-batch) contributes a zero gradient, so
    every rank joins every all-reduce in the same order.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    from torch.distributed.tensor import DTensor  # deferred: exists only where torch has distributed support

    world = dist.get_world_size()
    for param in model.parameters():
        if not param.requires_grad or isinstance(param, DTensor):
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad /= world


def _has_optional_branches(model: nn.Module) -> bool:
    return hasattr(model, "proj_mol") and hasattr(model, "proj_prot")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP2 shards in place, so it is the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(model, nn.parallel.DistributedDataParallel) else model
