"""MCQA fine-tuning and evaluation: ``biomedgpt train qa --config tiny`` or ``train_qa(load_config("qa", "tiny"))``.

The paper fine-tuned BioMedGPT-LM on MedMCQA/PubMedQA/MedQA (3 epochs, lr 2e-5, batch 512). Here a
causal LM learns ``mcqa_prompt(record) + " " + answer + EOS`` with the loss on the answer and EOS
only (``training/collate.py``). The prompt is the one the evaluation harness uses
(``training/eval_mcqa.mcqa_prompt``), so training and ``biomedgpt eval mcqa`` agree on wording.

The answer target is the option *letter* for lettered data sets (MedMCQA, MedQA — the prompt asks for
the letter) and the label for PubMedQA (yes/no/maybe). Evaluation after training, two ways:
- ``generate``: greedy decoding, then ``metrics.extract_choice`` (rules stated there: a leading letter,
  "answer is X", the text of exactly one option, a lone letter; for labels the first whole-word label);
  an unreadable answer counts as wrong and is counted in ``unanswered``.
- ``loglik``: the candidate with the highest log-probability after the prompt
  (``metrics.choose_by_loglik``); the candidates are what the model was trained to emit, i.e. the
  letters ``A``..``E`` (or the labels), so the score does not depend on option-text length.
Both are ``training/eval_mcqa.predict_mcqa``, what ``biomedgpt eval mcqa`` runs.
Accuracy is reported overall and per data set (``metrics.mcqa_accuracy``) into ``metrics.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from biomedgpt.core.datasets import ReadStats, read_mcqa, take
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.training.collate import encode_prompt_answer
from biomedgpt.training.config import QAConfig
from biomedgpt.training.distributed import DistEnv
from biomedgpt.training.eval_mcqa import MCQA_METHODS, mcqa_prompt, predict_mcqa
from biomedgpt.training.lm import save_hf_model, setup_causal_lm
from biomedgpt.training.loop import StepInfo, Trainer
from biomedgpt.training.metrics import mcqa_accuracy


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


def encode_mcqa(records: Sequence[Any], tokenizer: Any, max_length: int) -> list[Any]:
    """Prompt (``mcqa_prompt``) + target + EOS token ids, the loss on the target and EOS only."""
    return [encode_prompt_answer(tokenizer, mcqa_prompt(r), mcqa_target(r), max_length) for r in records]


@torch.no_grad()
def evaluate_mcqa_model(model: Any, tokenizer: Any, records: Sequence[Any], method: str, max_new_tokens: int = 8) -> dict[str, Any]:
    """``{n, accuracy, by_dataset, method, unanswered}`` of a HF causal LM on ``records``, predicted as
    ``eval mcqa`` predicts (``training/eval_mcqa.predict_mcqa``, letters/labels as candidates)."""
    if method not in MCQA_METHODS:
        raise ConfigError(f"qa: evaluation method {method!r} is not 'generate' or 'loglik'")
    was_training = model.training
    model.eval()
    predictions = predict_mcqa((model, tokenizer), records, method, max_new_tokens=max_new_tokens)
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

    def examples(tokenizer: Any, env: DistEnv) -> list:
        records = read_mcqa_records(config.data.train_path, config.data.train_format, config.data.limit_train, "train")
        return encode_mcqa(records, tokenizer, config.data.max_length)

    return setup_causal_lm(config, examples, env, on_step)


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
