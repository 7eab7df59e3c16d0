"""MCQA fine-tuning and evaluation: ``biomedgpt train qa --config tiny`` or ``train_qa(load_config("qa", "tiny"))``.

The paper fine-tuned BioMedGPT-LM on MedMCQA/PubMedQA/MedQA (3 epochs, lr 2e-5, batch 512). Here a
causal LM learns ``mcqa_prompt(record) + " " + answer + EOS`` with the loss on the answer and EOS
only (``training/collate.py``). The prompt is the one the evaluation harness uses
(``training/evaluate.mcqa_prompt``), so training and ``biomedgpt eval mcqa`` agree on wording.

The answer target is the option *letter* for lettered data sets (MedMCQA, MedQA — the prompt asks for
the letter) and the label for PubMedQA (yes/no/maybe). Evaluation after training, two ways:
- ``generate``: greedy decoding, then ``metrics.extract_choice`` (rules stated there: a leading letter,
  "answer is X", the text of exactly one option, a lone letter; for labels the first whole-word label);
  an unreadable answer counts as wrong and is counted in ``unanswered``.
- ``loglik``: the candidate with the highest log-probability after the prompt
  (``metrics.choose_by_loglik``); the candidates are what the model was trained to emit, i.e. the
  letters ``A``..``E`` (or the labels), so the score does not depend on option-text length.
Accuracy is reported overall and per data set (``metrics.mcqa_accuracy``) into ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from biomedgpt.core.datasets import ReadStats, read_mcqa, take
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.training.collate import PadCollator, causal_lm_loss, encode_prompt_answer
from biomedgpt.training.config import QAConfig
from biomedgpt.training.distributed import DistEnv, init_distributed
from biomedgpt.training.lm import load_causal_lm, save_hf_model
from biomedgpt.training.loop import StepInfo, Trainer, seed_everything


def read_mcqa_records(path: Path | None, fmt: str, limit: int | None, role: str) -> list[Any]:
    """All MCQA records of ``path`` (``core/datasets.read_mcqa``), at most ``limit``."""
    if path is None:
        raise ConfigError(f"qa: data.{role}_path is not set; pass --set data.{role}_path=FILE")
    records = list(take(read_mcqa(path, fmt, stats=ReadStats()), limit))
    if not records:
        raise InputError(f"qa: {path} holds no readable {fmt} questions")
    return records


def mcqa_target(record: Any) -> str:
    """What the model learns to answer: the option letter, or the PubMedQA label."""
    return str(record.answer)


def candidates(record: Any) -> dict[str, str] | list[str]:
    """The strings scored by log-likelihood: letters for lettered options, labels otherwise."""
    return {key: key for key in record.options} if isinstance(record.options, dict) else list(record.options)


def encode_mcqa(records: Sequence[Any], tokenizer: Any, max_length: int) -> list[Any]:
    from biomedgpt.training.evaluate import mcqa_prompt

    return [encode_prompt_answer(tokenizer, mcqa_prompt(r), mcqa_target(r), max_length) for r in records]


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


@torch.no_grad()
def evaluate_mcqa_model(model: Any, tokenizer: Any, records: Sequence[Any], method: str, max_new_tokens: int = 8) -> dict[str, Any]:
    """``{n, accuracy, by_dataset, method, unanswered}`` of a HF causal LM on ``records``."""
    from biomedgpt.training.evaluate import choose_by_loglik, extract_choice, mcqa_accuracy, mcqa_prompt

    was_training = model.training
    model.eval()
    prompts = [mcqa_prompt(r) for r in records]
    if method == "generate":
        texts = generate_answers(model, tokenizer, prompts, max_new_tokens)
        predictions = [extract_choice(t, r.options) for t, r in zip(texts, records)]
    elif method == "loglik":
        predictions = [choose_by_loglik(model, tokenizer, p, candidates(r)) for p, r in zip(prompts, records)]
    else:
        raise ConfigError(f"qa: evaluation method {method!r} is not 'generate' or 'loglik'")
    model.train(was_training)
    result = mcqa_accuracy([r.answer for r in records], predictions, [r.dataset for r in records])
    result.update({"method": method, "unanswered": sum(p is None for p in predictions)})
    return result


def setup_qa(
    config: QAConfig,
    env: DistEnv | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> tuple[Trainer, Any]:
    """Model, tokenised training set and ``Trainer``; returns ``(trainer, tokenizer)``."""
    env = env or init_distributed()
    seed_everything(config.seed)
    model, tokenizer = load_causal_lm(config.model, config.gradient_checkpointing)
    records = read_mcqa_records(config.data.train_path, config.data.train_format, config.data.limit_train, "train")
    examples = encode_mcqa(records, tokenizer, config.data.max_length)
    trainer = Trainer(config, model, examples, PadCollator(tokenizer.pad_token_id), causal_lm_loss, env=env, on_step=on_step)
    return trainer, tokenizer


def train_qa(config: QAConfig, on_step: Callable[[StepInfo], None] | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate on ``data.eval_path`` (when set) and write ``metrics.json``."""
    trainer, tokenizer = setup_qa(config, on_step=on_step)
    metrics: dict[str, Any] = dict(trainer.fit())
    if config.data.eval_path is not None:
        records = read_mcqa_records(config.data.eval_path, config.data.eval_format, config.data.limit_eval, "eval")
        # Every process evaluates the same records: under FSDP the forward pass is collective.
        model = trainer.inner_model
        metrics["eval"] = {m: evaluate_mcqa_model(model, tokenizer, records, m, config.max_new_tokens) for m in config.eval_methods}
    if config.save_final_model:
        metrics["model_dir"] = str(save_hf_model(trainer, tokenizer, Path(config.run_dir) / "model"))
    trainer.write_metrics(metrics)
    return metrics
