"""Incremental causal-LM training: ``biomedgpt train lm --config tiny`` or ``train_lm(load_config("lm", "tiny"))``.

What the paper did for BioMedGPT-LM-7B (Llama-2 continued on biomedical text), at any scale: raw
corpora (``.txt`` or ``.jsonl``; PubMed title+abstract records work as-is) are cut into sentences,
packed to ``data.context_length`` tokens (2048 by default), and the LM is trained on next-token
prediction with AdamW, linear warm-up and cosine decay, bf16 autocast on GPUs that support it (fp32
on CPU), optional gradient checkpointing, and DDP/FSDP under torchrun (``training/distributed.py``).
Checkpointing, exact resume, logs and progress come from ``training/loop.py``.

The corpus is tokenised and packed once (rank 0) into ``run_dir/data/packed-<fingerprint>.pt``;
other processes and resumed runs load it. The run directory also receives ``config.yaml``,
``log.jsonl``, ``checkpoints/``, ``metrics.json`` and ``model/`` (a Hugging Face folder: ``load_lm(run_dir / "model")`` reads it back).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from biomedgpt.core.datasets import ReadStats, read_text_corpus
from biomedgpt.core.files import atomic_dir
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.model.lm import ensure_pad_token, load_lm
from biomedgpt.training.collate import PadCollator, causal_lm_loss, pack_corpus
from biomedgpt.training.config import LMConfig
from biomedgpt.training.distributed import DistEnv, barrier, init_distributed
from biomedgpt.training.loop import StepInfo, Trainer, atomic_torch_save, perplexity, seed_everything


def load_causal_lm(name: str, gradient_checkpointing: bool = False) -> tuple[Any, Any]:
    """``(LlamaForCausalLM, tokenizer)`` from ``model/lm.py``'s ``load_lm`` (a preset name or a folder)."""
    model, tokenizer = load_lm(name, dtype=torch.float32)  # fp32 master weights; bf16 via autocast/FSDP
    ensure_pad_token(model, tokenizer)  # the same [PAD] rule as BioMedGPT (grows the embeddings if needed)
    if gradient_checkpointing:
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.config.use_cache = False
    return model, tokenizer


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy, batched (left-padded) generation from a HF causal LM; returns the new text only."""
    device = next(model.parameters()).device
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, padding_side="left").to(device)
        new = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )[:, enc["input_ids"].shape[1] :]
        outputs.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return outputs


def read_corpus_texts(config: LMConfig) -> list[str]:
    """All documents of ``data.paths`` (up to ``data.limit``), via ``core/datasets.read_text_corpus``."""
    if not config.data.paths:
        raise ConfigError("lm: data.paths is empty; pass --set 'data.paths=[corpus.jsonl]'")
    texts: list[str] = []
    for path in config.data.paths:
        stats = ReadStats()
        for record in read_text_corpus(path, field=config.data.text_field, stats=stats):
            texts.append(record.text)
            if config.data.limit is not None and len(texts) >= config.data.limit:
                return texts
    if not texts:
        raise InputError(f"lm: no documents found in {', '.join(map(str, config.data.paths))}")
    return texts


class PackedSequences(Sequence):
    """Packed token sequences stored flat (``tokens`` int32 + ``offsets``); item ``i`` is a LongTensor."""

    def __init__(self, tokens: torch.Tensor, offsets: torch.Tensor) -> None:
        self.tokens, self.offsets = tokens, offsets

    @classmethod
    def from_list(cls, sequences: list[torch.Tensor]) -> "PackedSequences":
        lengths = torch.tensor([0] + [len(s) for s in sequences], dtype=torch.long)
        tokens = torch.cat(sequences).to(torch.int32) if sequences else torch.zeros(0, dtype=torch.int32)
        return cls(tokens, lengths.cumsum(0))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int | slice) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return self.tokens[self.offsets[index] : self.offsets[index + 1]].long()

    @property
    def num_tokens(self) -> int:
        return int(self.tokens.numel())


def _corpus_fingerprint(config: LMConfig, tokenizer: Any) -> str:
    """Names the packed cache: the files (path, size, mtime), the packing knobs and the tokenizer."""
    parts: list[Any] = [config.data.context_length, config.data.limit, config.data.text_field, len(tokenizer)]
    parts.append(getattr(tokenizer, "name_or_path", ""))
    for path in config.data.paths:
        stat = Path(path).stat() if Path(path).is_file() else None
        parts.append((str(Path(path).resolve()), stat.st_size if stat else None, stat.st_mtime_ns if stat else None))
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def packed_corpus(config: LMConfig, tokenizer: Any, env: DistEnv) -> PackedSequences:
    """The packed training set, tokenised once per corpus: rank 0 packs and writes
    ``run_dir/data/packed-<fingerprint>.pt`` atomically; every process (and every resume) loads it."""
    path = Path(config.run_dir) / "data" / f"packed-{_corpus_fingerprint(config, tokenizer)}.pt"
    if env.is_main and not path.is_file():
        packed = PackedSequences.from_list(pack_corpus(read_corpus_texts(config), tokenizer, config.data.context_length))
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"tokens": packed.tokens, "offsets": packed.offsets}, path)
    barrier()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return PackedSequences(state["tokens"], state["offsets"])


def setup_lm(
    config: LMConfig,
    env: DistEnv | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> tuple[Trainer, Any]:
    """Build the model, the packed data set and the ``Trainer``; returns ``(trainer, tokenizer)``."""
    return setup_causal_lm(config, lambda tokenizer, env: packed_corpus(config, tokenizer, env), env, on_step)


def setup_causal_lm(
    config: Any,
    examples: Callable[[Any, DistEnv], Any],
    env: DistEnv | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> tuple[Trainer, Any]:
    """The set-up every causal-LM trainer shares: seed, load the LM, build ``examples(tokenizer, env)``, wrap a
    ``Trainer`` with padding and the causal-LM loss; returns ``(trainer, tokenizer)``."""
    env = env or init_distributed()
    seed_everything(config.seed)
    model, tokenizer = load_causal_lm(config.model, config.gradient_checkpointing)
    data = examples(tokenizer, env)
    trainer = Trainer(config, model, data, PadCollator(tokenizer.pad_token_id), causal_lm_loss, env=env, on_step=on_step)
    return trainer, tokenizer


def save_hf_model(trainer: Trainer, tokenizer: Any, folder: Path) -> Path | None:
    """Gather the full weights (collective under FSDP) and write a HF folder on rank 0."""
    state = trainer.full_model_state()
    if trainer.env.is_main:
        with atomic_dir(folder) as tmp:
            trainer.inner_model.save_pretrained(tmp, state_dict=state, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return folder


def train_lm(config: LMConfig, on_step: Callable[[StepInfo], None] | None = None) -> dict[str, Any]:
    """Train, save ``run_dir/model`` and ``metrics.json``; returns the metrics."""
    trainer, tokenizer = setup_lm(config, on_step=on_step)
    result = trainer.fit()
    tokens = trainer.dataset.num_tokens
    metrics = {
        **result,
        "final_perplexity": perplexity(result["final_loss"]),
        "sequences": len(trainer.dataset),
        "corpus_tokens": tokens,
        "context_length": config.data.context_length,
    }
    if config.save_final_model:
        metrics["model_dir"] = str(save_hf_model(trainer, tokenizer, Path(config.run_dir) / "model"))
    trainer.write_metrics(metrics)
    return metrics
