"""The one training loop every trainer uses: ``Trainer(config, model, dataset, collate, loss_fn).fit()``.

Why one place: checkpoint/resume, logging, progress, gradient accumulation, seeding and distribution
are easy to get subtly wrong, and the three trainers (lm, align, qa) must behave the same way.

What it guarantees:
- **Exact resume.** A checkpoint holds the trainable parameters, the AdamW state, the scheduler, the
  RNG states of python/numpy/torch (per process) and the data position. The data order of epoch
  ``e`` is a permutation drawn from a generator seeded with ``seed + e``, and one optimizer step
  consumes one global batch, so the step number *is* the data position. Killing a run at any point
  and running it again with the same config continues as if nothing happened.
- **Atomic writes.** A checkpoint is written into ``.step-NNNNNN.partial/`` and renamed to
  ``step-NNNNNN/`` only when every process has written its part; each file goes through a temporary
  name and ``os.replace``. A half-written checkpoint is never picked up.
- **Run directory.** ``config.yaml`` (resolved), ``log.jsonl`` (one JSON object per logged step),
  ``checkpoints/``, ``metrics.json`` and the final model (written by the trainer).
- **Batching.** ``global_batch_size = micro_batch_size × grad_accum × world_size``; the loss of a step
  is the mean of the micro-batch losses, so 1 process × 2 accumulation steps equals 2 processes × 1.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from biomedgpt.core.errors import BiomedGPTError, CheckpointError, ConfigError
from biomedgpt.core.files import atomic_dir, atomic_torch_save, atomic_write_text  # noqa: F401 - re-exported
from biomedgpt.training.config import TrainConfig, dump_config
from biomedgpt.training.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    init_distributed,
    resolve_strategy,
    sync_replicated_grads,
    unwrap,
    wrap_model,
)

LossFn = Callable[[nn.Module, Any], torch.Tensor]


class TrainingDiverged(BiomedGPTError):
    """The loss became NaN or infinite; the last checkpoint is intact, lower the learning rate."""
CHECKPOINT_PREFIX = "step-"


@dataclass
class StepInfo:
    """What a step callback sees after each optimizer step."""

    step: int
    epoch: int
    loss: float
    lr: float
    total_steps: int


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states of this process as tensors and plain values only (``torch.load(weights_only=True)`` reads them)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),  # (version, tuple of ints, gauss or None)
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "position": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        keys = np.asarray(numpy_state["keys"].numpy() if torch.is_tensor(numpy_state["keys"]) else numpy_state["keys"],
                          dtype=np.uint32)
        np.random.set_state((numpy_state["kind"], keys, numpy_state["position"], numpy_state["has_gauss"],
                             numpy_state["cached_gaussian"]))
    else:  # a run directory from before issue 13, loaded with --trust-run-dir
        np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_checkpoint_file(path: Path, *, trust: bool = False) -> Any:
    """``torch.load`` a checkpoint file with ``weights_only=True``; pickled objects need ``trust``.

    Why: ``torch.load(weights_only=False)`` runs whatever the pickle names, so resuming from someone else's
    run directory could execute code. Checkpoints written since issue 13 hold tensors and plain values
    only; an older file (numpy RNG state pickled as an ndarray) loads only when the user vouches for it
    with ``--trust-run-dir``.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust:
            raise CheckpointError(
                f"checkpoint file {path} holds pickled Python objects, which loading could execute (a run "
                f"directory from an older biomedgpt, or not written by biomedgpt); if you trust this run "
                f"directory, resume with `biomedgpt train ... --trust-run-dir` (or --set trust_run_dir=true); "
                f"otherwise start a new run_dir ({str(error).splitlines()[-1][:160] if str(error) else ''})"
            ) from None
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user problem
        raise CheckpointError(f"checkpoint file {path} cannot be read: {error}") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001
        raise CheckpointError(f"checkpoint file {path} cannot be read: {error}") from None


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict/list/tuple to ``device``; other values stay as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    if hasattr(batch, "to") and callable(batch.to):  # torch_geometric Batch
        return batch.to(device)
    return batch


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast where the hardware supports it (``auto``), fp32 on CPU."""
    if precision == "bf16":
        return True
    if precision == "auto":
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    return False


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in ``run_dir/checkpoints`` (partial ones are ignored)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    done = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / "state.pt").is_file()]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)


class Trainer:
    """Runs ``loss_fn(model, collate(examples))`` over ``dataset`` with every guarantee in the module doc.

    ``model`` must already hold its trainable/frozen flags (``requires_grad``); only trainable
    parameters are optimised and checkpointed. ``dataset`` is any indexable sequence of examples.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        dataset: Sequence[Any],
        collate: Callable[[list[Any]], Any],
        loss_fn: LossFn,
        env: DistEnv | None = None,
        on_step: Callable[[StepInfo], None] | None = None,
    ) -> None:
        self.config = config
        self.env = env or init_distributed()
        self.dataset = dataset
        self.collate = collate
        self.loss_fn = loss_fn
        self.on_step = on_step
        self.run_dir = Path(config.run_dir)
        self.accum = config.grad_accum(self.env.world_size)
        self.steps_per_epoch = len(dataset) // config.global_batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(dataset)} examples, fewer than one global batch "
                f"({config.global_batch_size}); lower global_batch_size or add data"
            )
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.bf16 = use_bf16(config.precision, self.env.device)
        self.strategy = resolve_strategy(config.strategy, self.env)
        self.model = wrap_model(model.to(self.env.device), self.strategy, self.env, bf16=self.bf16)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ConfigError("the model has no trainable parameters; check the freeze flags in the config")
        opt = config.optim
        self.optimizer = torch.optim.AdamW(params, lr=opt.lr, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)
        from transformers import get_cosine_schedule_with_warmup  # deferred: transformers

        self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, opt.warmup_steps, self.total_steps)
        self.step = 0
        self._perm_epoch = -1
        self._perm: torch.Tensor | None = None

    # ---- data -------------------------------------------------------------------------------
    def _order(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.config.seed + epoch)
            self._perm = torch.randperm(len(self.dataset), generator=gen)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def micro_batches(self, step: int) -> list[list[int]]:
        """The example indices this process uses at optimizer step ``step`` (one list per micro-batch)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        size = self.config.global_batch_size
        ids = self._order(epoch)[position * size : (position + 1) * size].tolist()
        micro = self.config.micro_batch_size
        first = self.env.rank * self.accum
        return [ids[(first + a) * micro : (first + a + 1) * micro] for a in range(self.accum)]

    # ---- checkpoints --------------------------------------------------------------------------
    def _state_options(self, loading: bool = False):
        from torch.distributed.checkpoint.state_dict import StateDictOptions  # deferred: ~0.7 s (FSDP)

        return StateDictOptions(
            full_state_dict=True,
            cpu_offload=not loading and self.strategy == "fsdp",
            ignore_frozen_params=True,
            strict=False,
        )

    def _trained_keys(self) -> set[str]:
        """Trainable parameters plus the buffers of the modules that own them.

        Why the buffers: a trained GIN's BatchNorm running statistics change every step; without
        them a resumed run would evaluate (and save) with stale statistics.
        """
        base = unwrap(self.model)
        keys = {n for n, p in base.named_parameters(remove_duplicate=False) if p.requires_grad}
        for module_name, module in base.named_modules(remove_duplicate=False):
            if any(p.requires_grad for p in module.parameters(recurse=False)):
                prefix = f"{module_name}." if module_name else ""
                keys.update(prefix + name for name, _ in module.named_buffers(recurse=False))
        return keys

    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step atomically; keep the newest ``keep_checkpoints``."""
        from torch.distributed.checkpoint.state_dict import get_state_dict  # deferred: ~0.7 s (FSDP)

        folder = self.run_dir / "checkpoints"
        name = f"{CHECKPOINT_PREFIX}{self.step:06d}"
        partial, final = folder / f".{name}.partial", folder / name
        model_state, optim_state = get_state_dict(self.model, self.optimizer, options=self._state_options())
        # ignore_frozen_params misses a frozen weight tied to another (SmolLM2's lm_head): keep only
        # what is trained, so a checkpoint of the aligned mini model holds MBs, not the LM.
        model_state = {k: v for k, v in model_state.items() if k in self._trained_keys()}
        if self.env.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        barrier()
        atomic_torch_save(rng_state(), partial / f"rng-rank{self.env.rank}.pt")
        if self.env.is_main:
            state = {
                "model": model_state,
                "optimizer": optim_state,
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.step // self.steps_per_epoch,
                "position": self.step % self.steps_per_epoch,
                "global_batch_size": self.config.global_batch_size,
                "seed": self.config.seed,
                "world_size": self.env.world_size,
                "total_steps": self.total_steps,
            }
            atomic_torch_save(state, partial / "state.pt")
        barrier()
        if self.env.is_main:
            shutil.rmtree(final, ignore_errors=True)
            os.replace(partial, final)
            done = sorted(
                (p for p in folder.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)),
                key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]),
            )
            for old in done[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        barrier()
        return final

    def load_checkpoint(self, path: Path) -> None:
        """Restore everything ``save_checkpoint`` wrote; a mismatched run is a ``CheckpointError``."""
        from torch.distributed.checkpoint.state_dict import set_state_dict  # deferred: ~0.7 s (FSDP)

        trust = self.config.trust_run_dir
        rng_file = path / f"rng-rank{self.env.rank}.pt"
        state = load_checkpoint_file(path / "state.pt", trust=trust)
        rng = load_checkpoint_file(rng_file, trust=trust) if rng_file.is_file() else None  # checked before anything changes
        for key in ("global_batch_size", "seed"):
            if state[key] != getattr(self.config, key):
                raise CheckpointError(
                    f"checkpoint {path} was written with {key}={state[key]}, the config says "
                    f"{getattr(self.config, key)}; use a new run_dir or resume=false"
                )
        set_state_dict(
            self.model,
            self.optimizer,
            model_state_dict=state["model"],
            optim_state_dict=state["optimizer"],
            options=self._state_options(loading=True),
        )
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        # The learning rate of the next step from the schedule of *this* config: identical when the
        # config is unchanged, and right when a finished run is extended (a larger max_steps/epochs).
        for group, base, fn in zip(self.optimizer.param_groups, self.scheduler.base_lrs, self.scheduler.lr_lambdas):
            group["lr"] = base * fn(self.scheduler.last_epoch)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        if rng is not None:
            set_rng_state(rng)

    # ---- logging ------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.run_dir / "log.jsonl"

    def _log(self, record: dict[str, Any]) -> None:
        if self.env.is_main:
            with self.log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _trim_log(self) -> None:
        """After a resume, drop log lines of steps that are about to be redone."""
        if not (self.env.is_main and self.log_path.is_file()):
            return
        kept = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if record.get("step", 0) <= self.step:
                kept.append(line)
        atomic_write_text(self.log_path, "".join(f"{line}\n" for line in kept))

    def _last_logged_loss(self) -> float | None:
        """The loss of the last logged step (a re-run of a finished run trains nothing new)."""
        if not self.log_path.is_file():
            return None
        losses = [r["loss"] for r in map(json.loads, self.log_path.read_text().splitlines()) if "loss" in r]
        return losses[-1] if losses else None

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        path = self.run_dir / "metrics.json"
        if self.env.is_main:
            atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        return path

    # ---- training -------------------------------------------------------------------------------
    def _forward_backward(self, indices: list[int], last: bool) -> torch.Tensor:
        batch = to_device(self.collate([self.dataset[i] for i in indices]), self.env.device)
        sync = contextlib.nullcontext()
        if self.strategy == "ddp" and not last:
            sync = self.model.no_sync()
        elif self.strategy == "fsdp":  # reduce-scatter once per optimizer step, not per micro-batch
            self.model.set_requires_gradient_sync(last)
        autocast = torch.autocast(self.env.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        with sync:
            with autocast:
                loss = self.loss_fn(self.model, batch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at step {self.step + 1} (examples {indices}); "
                    f"the newest checkpoint in {self.run_dir / 'checkpoints'} is intact: lower optim.lr and re-run"
                )
            (loss / self.accum).backward()
        return loss.detach().float()

    def fit(self) -> dict[str, Any]:
        """Train until ``total_steps``; returns ``{"steps", "final_loss", "loss_history", ...}``."""
        cfg = self.config
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", dump_config(cfg))
        barrier()
        resumed_from = None
        if cfg.resume and (found := latest_checkpoint(self.run_dir)) is not None:
            self.load_checkpoint(found)
            resumed_from = str(found)
            self._trim_log()
            self._log({"event": "resume", "step": self.step, "checkpoint": found.name})
        else:
            seed_everything(cfg.seed + self.env.rank)
            if self.env.is_main and self.log_path.exists():
                self.log_path.unlink()
        self.model.train()
        history: list[float] = []
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=f"train {cfg.kind}",
            unit="step",
            disable=not (self.env.is_main and cfg.progress),
            dynamic_ncols=True,
        )
        started = time.perf_counter()
        while self.step < self.total_steps:
            micro = self.micro_batches(self.step)
            losses = [self._forward_backward(ids, last=(a == len(micro) - 1)) for a, ids in enumerate(micro)]
            if self.strategy == "fsdp":
                sync_replicated_grads(self.model)
            grad_norm = None
            if cfg.optim.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.optim.grad_clip
                )
                grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
            lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            loss = float(all_reduce_mean(torch.stack(losses).mean()))
            history.append(loss)
            epoch = (self.step - 1) // self.steps_per_epoch
            if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                self._log(
                    {
                        "step": self.step,
                        "epoch": epoch,
                        "loss": loss,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "elapsed_s": round(time.perf_counter() - started, 3),
                    }
                )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            if self.step % cfg.checkpoint_every == 0 or self.step == self.total_steps:
                self.save_checkpoint()
            if self.on_step is not None:
                self.on_step(StepInfo(self.step, epoch, loss, lr, self.total_steps))
        bar.close()
        return {
            "steps": self.step,
            "total_steps": self.total_steps,
            "final_loss": history[-1] if history else self._last_logged_loss(),
            "loss_history": history,
            "resumed_from": resumed_from,
            "world_size": self.env.world_size,
            "strategy": self.strategy,
            "bf16": self.bf16,
        }

    def full_model_state(self) -> dict[str, torch.Tensor]:
        """All parameters and buffers gathered on CPU (rank 0 holds them under FSDP)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict  # deferred: ~0.7 s

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.model, options=options)

    @property
    def inner_model(self) -> nn.Module:
        return unwrap(self.model)


def perplexity(loss: float | None) -> float | None:
    """``exp(loss)``, or ``None`` when there is no loss or it overflows."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None
