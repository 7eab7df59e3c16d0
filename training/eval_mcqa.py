"""Multiple-choice evaluation: ``eval_mcqa(model, "medmcqa/dev.jsonl", "medmcqa", method="loglik")`` → accuracy.

MedMCQA, PubMedQA and MedQA-USMLE (``core/datasets.read_mcqa``), accuracy overall and per data set, by
generation with answer extraction (``metrics.extract_choice``) or by option log-likelihood
(``metrics.choose_by_loglik``). ``mcqa_prompt`` is also the prompt ``train qa`` fits, and
``predict_mcqa`` is also how ``train qa`` scores its model after training, so the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from biomedgpt.core.datasets import MCQARecord, ReadStats, read_mcqa, take
from biomedgpt.core.errors import ConfigError, InputError
from biomedgpt.model.conversation import chat_prompt
from biomedgpt.training.eval_common import MAX_NEW_TOKENS, generate_batch, progress_bar, resolve_model
from biomedgpt.training.metrics import choose_by_loglik, extract_choice, mcqa_accuracy

MCQA_METHODS = ("generate", "loglik")
MCQA_CANDIDATES = ("letters", "texts")


def mcqa_prompt(record: MCQARecord) -> str:
    """The zero-shot question: (abstract), question, lettered options or the label set, in the released
    chat format (``model/conversation.chat_prompt``), ending with ``### Assistant: ``."""
    parts = []
    if record.context:
        parts.append(f"Context: {record.context}")
    parts.append(f"Question: {record.question}")
    if isinstance(record.options, dict):
        parts.append("Options: " + " ".join(f"{k}. {v}" for k, v in record.options.items()))
        parts.append("Answer with the letter of the correct option.")
    else:
        parts.append(f"Answer with one of: {', '.join(record.options)}.")
    return chat_prompt("\n".join(parts))


def causal_lm_of(model: Any) -> tuple[Any, Any]:
    """(HF causal LM, tokenizer) for log-likelihood scoring: a ``(model, tokenizer)`` pair, or a
    BioMedGPT (its ``.lm`` and ``.tokenizer``)."""
    if isinstance(model, tuple) and len(model) == 2:
        return model
    lm = getattr(model, "lm", None)
    tokenizer = getattr(model, "tokenizer", None)
    if lm is None or tokenizer is None:
        raise InputError(f"--method loglik needs a causal language model with a tokenizer; {type(model).__name__} "
                         "has no .lm/.tokenizer (pass a BioMedGPT or an (HF model, tokenizer) pair)")
    return lm, tokenizer


def eval_mcqa(model: Any, data_path: str | Path, format: str, method: str = "generate", limit: int | None = None,
              batch_size: int = 8, *, reduction: str = "sum", candidates: str = "letters",
              progress: bool = True) -> dict[str, Any]:
    """Accuracy on MedMCQA / PubMedQA / MedQA-USMLE: ``{n, accuracy, by_dataset, method, unanswered}``.

    ``model``: a BioMedGPT (or its name/folder), or an HF causal LM as an ``(LM, tokenizer)`` pair or
    a folder (e.g. the ``run_dir/model`` of ``biomedgpt train qa``).
    ``generate``: the model answers ``mcqa_prompt``; ``extract_choice`` reads the letter or label
    (unreadable answers count as wrong and are counted in ``unanswered``). ``loglik``: the candidate
    with the highest log-probability after the prompt (``reduction`` 'sum' or 'mean' over its tokens);
    ``candidates`` 'letters' scores the option letters — what the prompt asks for and what ``train qa``
    teaches — and 'texts' scores the option texts (the zero-shot habit). PubMedQA always scores its labels.
    """
    if method not in MCQA_METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(MCQA_METHODS)}")
    if candidates not in MCQA_CANDIDATES:
        raise ConfigError(f"candidates {candidates!r} is not one of {', '.join(MCQA_CANDIDATES)}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    model = resolve_model(model, allow_lm=True)
    if model is None:
        raise InputError("eval mcqa needs --model")
    stats = ReadStats()
    records: list[MCQARecord] = list(take(read_mcqa(data_path, format, stats=stats), limit))
    with progress_bar(len(records), f"MCQA ({method})", progress) as bar:
        predictions = predict_mcqa(model, records, method, batch_size=batch_size, reduction=reduction,
                                   candidates=candidates, on_batch=bar.update)
    result = mcqa_accuracy([r.answer for r in records], predictions, [r.dataset for r in records])
    result.update({"method": method, "unanswered": sum(p is None for p in predictions), "skipped_rows": stats.skipped})
    return result


def mcqa_candidates(record: MCQARecord, candidates: str = "letters") -> dict[str, str] | list[str]:
    """The strings scored by log-likelihood: with 'letters' the option letters (what the prompt asks for
    and what ``train qa`` teaches), with 'texts' the option texts; PubMedQA's labels either way."""
    if isinstance(record.options, dict) and candidates == "letters":
        return {key: key for key in record.options}
    return record.options


def predict_mcqa(model: Any, records: Sequence[MCQARecord], method: str, *, max_new_tokens: int = MAX_NEW_TOKENS["mcqa"],
                 batch_size: int = 8, reduction: str = "sum", candidates: str = "letters",
                 on_batch: Any = None) -> list[str | None]:
    """One predicted letter or label per record (None: the answer could not be read).

    ``model``: a BioMedGPT or an ``(LM, tokenizer)`` pair. ``generate``: greedy answers to
    ``mcqa_prompt`` in batches of ``batch_size``, read by ``extract_choice``; ``loglik``: the candidate
    (``mcqa_candidates``) with the highest log-probability after the prompt. ``on_batch(n)`` is called
    after every ``n`` records (a progress bar).
    """
    predictions: list[str | None] = []
    if method == "loglik":
        lm, tokenizer = causal_lm_of(model)
        for record in records:
            predictions.append(choose_by_loglik(lm, tokenizer, mcqa_prompt(record), mcqa_candidates(record, candidates),
                                                reduction=reduction))
            if on_batch is not None:
                on_batch(1)
    elif method == "generate":
        for start in range(0, len(records), batch_size):
            batch = records[start:start + batch_size]
            texts = _generate_text(model, [mcqa_prompt(r) for r in batch], max_new_tokens)
            predictions.extend(extract_choice(t, r.options) for t, r in zip(texts, batch))
            if on_batch is not None:
                on_batch(len(batch))
    else:
        raise ConfigError(f"MCQA method {method!r} is not one of {', '.join(MCQA_METHODS)}")
    return predictions


def _generate_text(model: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Text-only generation: BioMedGPT.generate, or greedy decoding of an ``(LM, tokenizer)`` pair."""
    if isinstance(model, tuple):
        from biomedgpt.training.lm import generate_answers  # deferred: torch

        lm, tokenizer = model
        return generate_answers(lm, tokenizer, prompts, max_new_tokens, batch_size=len(prompts))
    return generate_batch(model, prompts, max_new_tokens=max_new_tokens)
