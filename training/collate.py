"""Turning records into model batches: ``pack_corpus(texts, tokenizer, 2048)``, ``PadCollator(pad_id)``,
``encode_prompt_answer(tokenizer, prompt, answer, max_length)``, ``AlignCollator``.

Why here: the trainers share the two rules that decide what the model learns from —
1. **LM packing** (``training/lm.py``): documents are cut into sentences (NLTK's Punkt, with its
   default parameters, so nothing is downloaded) and whole sentences are packed greedily into
   sequences of at most ``context_length`` tokens; a sentence never straddles two sequences unless it
   is itself longer than the context. Each document ends with EOS. Token boundaries come from the
   fast tokenizer's offsets on the whole document, so BPE merges across spaces are the same as at
   inference time.
2. **Answer-only loss** (``training/qa.py``): prompt tokens get label ``-100``; the answer plus EOS are
   the targets. An over-long prompt loses tokens from the *left* so the question and options survive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from biomedgpt.core.errors import ConfigError

IGNORE_INDEX = -100


def _punkt():
    from nltk.tokenize.punkt import PunktSentenceTokenizer  # deferred: NLTK costs ~1 s to import

    return PunktSentenceTokenizer()


def sentence_token_ids(text: str, tokenizer: Any, splitter: Any | None = None) -> list[list[int]]:
    """The token ids of ``text`` grouped by sentence (tokenised once, split at sentence offsets)."""
    splitter = splitter or _punkt()
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    ends = [end for _, end in splitter.span_tokenize(text)] or [len(text)]
    sentences: list[list[int]] = [[]]
    current = 0
    for token, (start, _end) in zip(ids, offsets):
        while current < len(ends) - 1 and start >= ends[current]:
            current += 1
            if sentences[-1]:
                sentences.append([])
        sentences[-1].append(token)
    return [s for s in sentences if s]


def pack_sentences(documents: Iterable[list[list[int]]], context_length: int, eos_id: int) -> list[list[int]]:
    """Greedy packing of whole sentences into sequences of at most ``context_length`` tokens."""
    packed: list[list[int]] = []
    current: list[int] = []
    for sentences in documents:
        if not sentences:
            continue
        sentences = [*sentences[:-1], [*sentences[-1], eos_id]]
        for sentence in sentences:
            if len(sentence) > context_length:  # a run-on "sentence" (tables, sequences): cut by tokens
                if current:
                    packed.append(current)
                pieces = [sentence[i : i + context_length] for i in range(0, len(sentence), context_length)]
                packed.extend(pieces[:-1])
                current = list(pieces[-1])
            elif len(current) + len(sentence) > context_length:
                packed.append(current)
                current = list(sentence)
            else:
                current.extend(sentence)
    if current:
        packed.append(current)
    return packed


def pack_corpus(texts: Iterable[str], tokenizer: Any, context_length: int) -> list[torch.Tensor]:
    """Raw documents → packed token sequences (``LongTensor``), ready for ``PadCollator``."""
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no EOS token; documents cannot be separated when packing")
    splitter = _punkt()
    documents = (sentence_token_ids(text, tokenizer, splitter) for text in texts)
    return [torch.tensor(seq, dtype=torch.long) for seq in pack_sentences(documents, context_length, tokenizer.eos_token_id)]


@dataclass(frozen=True)
class Example:
    """One supervised sequence: ``input_ids`` and ``labels`` (``-100`` where no loss is taken)."""

    input_ids: torch.Tensor
    labels: torch.Tensor


def encode_prompt_answer(tokenizer: Any, prompt: str, answer: str, max_length: int) -> Example:
    """``prompt + answer + EOS`` with the loss on ``answer + EOS`` only."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    answer_ids = answer_ids[: max(1, max_length // 2)]
    room = max_length - len(answer_ids)
    prompt_ids = prompt_ids[-room:] if room > 0 else []
    ids = torch.tensor(prompt_ids + answer_ids, dtype=torch.long)
    labels = torch.tensor([IGNORE_INDEX] * len(prompt_ids) + answer_ids, dtype=torch.long)
    return Example(ids, labels)


@dataclass
class PadCollator:
    """Right-pads a list of ``LongTensor`` sequences or ``Example`` s into a causal-LM batch.

    Returns ``input_ids``, ``attention_mask`` and ``labels`` (padding is ``-100``); plain sequences are
    their own labels (next-token prediction over the whole sequence).
    """

    pad_id: int

    def __call__(self, items: Sequence[torch.Tensor | Example]) -> dict[str, torch.Tensor]:
        ids = [it.input_ids if isinstance(it, Example) else it for it in items]
        labels = [it.labels if isinstance(it, Example) else it for it in items]
        width = max(len(x) for x in ids)
        batch_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        batch_labels = torch.full((len(ids), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, (x, y) in enumerate(zip(ids, labels)):
            batch_ids[row, : len(x)] = x
            batch_labels[row, : len(y)] = y
            mask[row, : len(x)] = 1
        return {"input_ids": batch_ids, "attention_mask": mask, "labels": batch_labels}


def causal_lm_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The HF causal-LM loss (mean over target tokens) of a ``PadCollator`` batch."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
