"""Text, QA and MCQA metrics: ``caption_metrics(references, predictions)`` → ``{n, bleu2, bleu4, rouge1, rouge2, rougeL, meteor}``.

Why this module exists: published captioning numbers (MolT5, BioMedGPT-10B Table 3) are only
comparable when the protocol is identical, so this follows MolT5's ``text_translation_metrics.py``
exactly — SciBERT uncased WordPieces (``BertTokenizerFast`` from the shipped vocabulary folder,
31,090 entries), truncation at 512, ``[PAD]``/``[CLS]``/``[SEP]`` dropped, NLTK corpus BLEU-2/4 with
no smoothing, NLTK METEOR averaged per sample, ``rouge_score`` ROUGE-1/2/L F-measure on the raw strings
without a stemmer. ``protocol="openbiomed-v2"`` is the OpenBioMed v2 variant: bert-base-uncased
WordPieces (pass its vocabulary folder; it is not shipped) and per-sample BLEU with NLTK's smoothing
method 1, averaged. METEOR needs WordNet; without it METEOR is ``None`` and ``note`` says why (never 0).
"""

from __future__ import annotations

import logging
import re
import string
import warnings
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from biomedgpt.core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

SCIBERT_VOCAB = Path(__file__).resolve().parent / "data" / "scibert_scivocab_uncased"
SCIBERT_SIZE = 31090
BERT_BASE_UNCASED_SIZE = 30522
MAX_TOKENS = 512
DROPPED_TOKENS = ("[PAD]", "[CLS]", "[SEP]")
PROTOCOLS = ("molt5", "openbiomed-v2")
TEXT_KEYS = ("n", "bleu2", "bleu4", "rouge1", "rouge2", "rougeL", "meteor")
WORDNET_NOTE = ("METEOR needs WordNet, which NLTK cannot find; run `make install` (or "
                "`bash scripts/install_wordnet.sh .venv/share/nltk_data/corpora/wordnet`) — see README, Troubleshooting")


# ---------------------------------------------------------------------------------------- tokenizer
def load_text_tokenizer(vocab_dir: str | Path | None = None, expected_size: int | None = SCIBERT_SIZE):
    """``BertTokenizerFast.from_pretrained(vocab_dir, do_lower_case=True)``, checked.

    Why ``from_pretrained`` on the folder and not ``BertTokenizerFast(vocab_file=...)``: with
    transformers 5 the latter silently builds an empty vocabulary (every word becomes ``[UNK]`` and BLEU
    is absurdly high). The size check catches that and any wrong folder: ``expected_size`` (31,090 for
    SciBERT, the protocol's vocabulary) must match ``len(tokenizer)``; None skips the check.
    """
    folder = Path(vocab_dir) if vocab_dir is not None else SCIBERT_VOCAB
    if not (folder / "vocab.txt").is_file():
        raise InputError(f"vocabulary folder {folder} has no vocab.txt (a WordPiece vocabulary, one token per line)")
    return _load_tokenizer(str(folder.resolve()), expected_size)


@lru_cache(maxsize=4)
def _load_tokenizer(folder: str, expected_size: int | None):
    from transformers import BertTokenizerFast  # deferred: transformers

    tokenizer = BertTokenizerFast.from_pretrained(folder, do_lower_case=True)
    if expected_size is not None and len(tokenizer) != expected_size:
        raise InputError(f"vocabulary {folder}/vocab.txt gives {len(tokenizer)} tokens, expected {expected_size} "
                         "(the SciBERT uncased vocabulary of the MolT5 protocol has 31,090)")
    return tokenizer


def wordpieces(tokenizer, texts: Sequence[str], max_length: int = MAX_TOKENS) -> list[list[str]]:
    """MolT5's tokenization: WordPieces without special tokens, truncated at ``max_length``, then
    ``[PAD]``/``[CLS]``/``[SEP]`` removed (they can appear when a model echoes them as text)."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)
    return [[t for t in enc.tokens if t not in DROPPED_TOKENS] for enc in encoded.encodings]


# ------------------------------------------------------------------------------------------ METEOR
def wordnet_status() -> tuple[bool, str | None]:
    """(True, None) when NLTK can read WordNet (searched afresh on ``nltk.data.path``), else (False, note)."""
    import nltk  # deferred: NLTK costs ~1 s to import; only METEOR/BLEU need it

    try:
        nltk.data.find("corpora/wordnet/lexnames")
        nltk.data.find("corpora/wordnet/index.sense")
        from nltk.corpus import wordnet  # deferred: NLTK

        wordnet.ensure_loaded()
        wordnet.synsets("acid")
    except (LookupError, OSError) as error:
        return False, f"{WORDNET_NOTE} ({type(error).__name__})"
    return True, None


def _meteor(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> tuple[float | None, str | None]:
    ok, note = wordnet_status()
    if not ok:
        log.warning("METEOR not computed: %s", note)
        return None, note
    from nltk.translate.meteor_score import meteor_score  # deferred: NLTK

    if not hypotheses:
        return None, "no samples"
    scores = [meteor_score([list(ref)], list(hyp)) for ref, hyp in zip(references, hypotheses)]
    return sum(scores) / len(scores), None


# ------------------------------------------------------------------------------------------ scores
def caption_metrics(references: Sequence[str], predictions: Sequence[str], *, tokenizer=None,
                    vocab: str | Path | None = None, protocol: str = "molt5") -> dict[str, Any]:
    """Score ``predictions`` against ``references`` (parallel lists of strings).

    Returns ``{n, bleu2, bleu4, rouge1, rouge2, rougeL, meteor}`` as floats in [0, 1] (``meteor``
    None when WordNet is missing; then ``note`` explains). ``tokenizer`` overrides ``vocab``; the
    default vocabulary is the shipped SciBERT one (31,090 entries, checked). For
    ``protocol="openbiomed-v2"`` pass the bert-base-uncased folder as ``vocab`` (30,522, checked).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if len(references) != len(predictions):
        raise InputError(f"{len(references)} references but {len(predictions)} predictions")
    if tokenizer is None:
        if protocol == "openbiomed-v2":
            if vocab is None:
                raise InputError("protocol openbiomed-v2 needs --vocab: a folder with bert-base-uncased's vocab.txt "
                                 "(30,522 entries; not shipped)")
            tokenizer = load_text_tokenizer(vocab, expected_size=BERT_BASE_UNCASED_SIZE)
        else:
            tokenizer = load_text_tokenizer(vocab, expected_size=SCIBERT_SIZE)
    n = len(references)
    result: dict[str, Any] = {"n": n}
    if n == 0:
        result.update({k: None for k in TEXT_KEYS[1:]})
        result["note"] = "no samples"
        return result
    # MolT5 strips a leading "[CLS] " that some decoders emit before scoring.
    predictions = [p[6:] if p.startswith("[CLS] ") else p for p in predictions]
    refs = wordpieces(tokenizer, references)
    hyps = wordpieces(tokenizer, predictions)
    with warnings.catch_warnings():
        # NLTK warns on every zero n-gram count; under the protocol (no smoothing) that is just a 0.
        warnings.filterwarnings("ignore", category=UserWarning, module="nltk.translate.bleu_score")
        result.update(_bleu(refs, hyps, protocol))
    result.update(rouge(references, predictions))
    meteor, note = _meteor(refs, hyps)
    result["meteor"] = meteor
    if note:
        result["note"] = note
    return result


def _bleu(refs: list[list[str]], hyps: list[list[str]], protocol: str) -> dict[str, float]:
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu, sentence_bleu  # deferred: NLTK

    n = len(refs)
    result = {}
    if protocol == "molt5":
        corpus_refs = [[r] for r in refs]
        result["bleu2"] = float(corpus_bleu(corpus_refs, hyps, weights=(0.5, 0.5)))
        result["bleu4"] = float(corpus_bleu(corpus_refs, hyps, weights=(0.25, 0.25, 0.25, 0.25)))
    else:
        smooth = SmoothingFunction().method1
        result["bleu2"] = sum(sentence_bleu([r], h, weights=(0.5, 0.5), smoothing_function=smooth)
                              for r, h in zip(refs, hyps)) / n
        result["bleu4"] = sum(sentence_bleu([r], h, weights=(0.25,) * 4, smoothing_function=smooth)
                              for r, h in zip(refs, hyps)) / n
    return result


def rouge(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Mean ``rouge_score`` ROUGE-1/2/L F-measure on the raw strings, no stemmer (MolT5's settings)."""
    from rouge_score import rouge_scorer  # deferred: it imports NLTK

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for ref, pred in zip(references, predictions):
        scores = scorer.score(ref, pred)
        for key in totals:
            totals[key] += scores[key].fmeasure
    return {key: value / max(1, len(references)) for key, value in totals.items()}


_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def normalize_answer(text: str) -> str:
    """Exact-match normalisation: lower case, punctuation → space, whitespace collapsed."""
    return " ".join(str(text).lower().translate(_PUNCT).split())


def exact_match(references: Sequence[str], predictions: Sequence[str]) -> float | None:
    """Fraction of predictions equal to their reference after ``normalize_answer``."""
    if not references:
        return None
    return sum(normalize_answer(r) == normalize_answer(p) for r, p in zip(references, predictions)) / len(references)


def protein_qa_metrics(references: Sequence[str], predictions: Sequence[str], question_types: Sequence[str], *,
                       tokenizer=None, vocab: str | Path | None = None, protocol: str = "molt5") -> dict[str, Any]:
    """The caption metrics plus ``exact_match``, overall and per question type (``by_question``)."""
    if not (len(references) == len(predictions) == len(question_types)):
        raise InputError("references, predictions and question types must have the same length")
    if tokenizer is None and protocol == "molt5":
        tokenizer = load_text_tokenizer(vocab)
    overall = caption_metrics(references, predictions, tokenizer=tokenizer, vocab=vocab, protocol=protocol)
    overall["exact_match"] = exact_match(references, predictions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, kind in enumerate(question_types):
        groups[kind].append(i)
    by_question = {}
    for kind in sorted(groups):
        idx = groups[kind]
        refs, preds = [references[i] for i in idx], [predictions[i] for i in idx]
        part = caption_metrics(refs, preds, tokenizer=tokenizer, vocab=vocab, protocol=protocol)
        part.pop("note", None)
        part["exact_match"] = exact_match(refs, preds)
        by_question[kind] = part
    overall["by_question"] = by_question
    return overall


# -------------------------------------------------------------------------------------------- MCQA
_LETTER_PATTERNS = (
    # 1. the answer starts with the letter: "B", "B.", "B)", "(B)", "B: text"
    re.compile(r"^\s*\(?([A-Z])\)?(?:[.):,\s]|$)"),
    # 2. an explicit statement: "answer is B", "answer: (C)", "correct option is D"
    re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*\(?([A-Z])\)?(?![A-Za-z])", re.IGNORECASE),
)


def extract_choice(text: str, options: dict[str, str] | Sequence[str]) -> str | None:
    """The option a generated answer picks, or None when it picks none (scored as wrong).

    Letter options (a dict ``{"A": text, ...}``, A-E), rules in order:
      1. the answer starts with a valid letter, alone or as ``B.``, ``B)``, ``(B)``, ``B:``;
      2. an explicit statement anywhere: ``answer is C``, ``Answer: (C)``, ``correct option is C``;
      3. the answer contains the text of exactly one option (case-insensitive);
      4. exactly one valid letter stands alone as a word (upper case) in the answer.
    Label options (a list, e.g. PubMedQA ``["yes", "no", "maybe"]``), rules in order:
      1. ``answer is <label>`` / ``answer: <label>``;
      2. the first label that occurs as a whole word (case-insensitive).
    """
    text = str(text or "")
    if isinstance(options, dict):
        valid = {k.upper() for k in options}
        for pattern in _LETTER_PATTERNS:
            match = pattern.search(text)
            if match and match.group(1).upper() in valid:
                # "A" as the English article ("A patient ...") is not a choice when text follows it.
                if pattern is _LETTER_PATTERNS[0] and match.group(1) == "A" and re.match(r"^\s*A\s+[a-z]", text):
                    continue
                return match.group(1).upper()
        lowered = text.lower()
        contained = [k for k, v in options.items() if v and v.lower() in lowered]
        if len(contained) == 1:
            return contained[0].upper()
        standalone = set()
        for match in re.finditer(r"\b([A-Z])\b", text):
            letter = match.group(1)
            if letter in valid and not (letter == "A" and re.match(r"\s+[a-z]", text[match.end():])):
                standalone.add(letter)  # "A" followed by a lower-case word is the article
        if len(standalone) == 1:
            return standalone.pop()
        return None
    labels = [str(o).lower() for o in options]
    alternation = "|".join(re.escape(label) for label in labels)
    match = re.search(rf"answer\s*(?:is|:)\s*[:\-]?\s*\(?({alternation})\b", text, re.IGNORECASE)
    if match:
        return match.group(1).lower()
    match = re.search(rf"\b({alternation})\b", text, re.IGNORECASE)
    return match.group(1).lower() if match else None


def mcqa_accuracy(answers: Sequence[str], predictions: Sequence[str | None], datasets: Sequence[str]) -> dict[str, Any]:
    """``{n, accuracy, by_dataset: {name: {n, accuracy}}}``; a None prediction counts as wrong."""
    if not (len(answers) == len(predictions) == len(datasets)):
        raise InputError("answers, predictions and datasets must have the same length")
    groups: dict[str, list[bool]] = defaultdict(list)
    for answer, pred, dataset in zip(answers, predictions, datasets):
        groups[dataset].append(pred is not None and str(pred).lower() == str(answer).lower())
    correct = [c for values in groups.values() for c in values]
    return {
        "n": len(correct),
        "accuracy": (sum(correct) / len(correct)) if correct else None,
        "by_dataset": {name: {"n": len(v), "accuracy": sum(v) / len(v)} for name, v in sorted(groups.items())},
    }


def option_logprobs(model, tokenizer, prompt: str, options: Sequence[str], *, reduction: str = "sum") -> list[float]:
    """Log-probability of each option's tokens given ``prompt``, under an HF causal LM.

    The prompt and each option (with a leading space) are tokenized separately and concatenated, so
    every option is scored on exactly its own tokens. ``reduction`` is ``"sum"`` (total log-prob; the
    usual choice for single-word options) or ``"mean"`` (per token; fairer to long option texts). All
    options go through one padded forward pass.
    """
    import torch  # deferred: torch costs seconds; the text metrics do not need it

    if reduction not in ("sum", "mean"):
        raise ConfigError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if not options:
        raise InputError("no options to score")
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    option_ids = [tokenizer(" " + str(o).strip(), add_special_tokens=False)["input_ids"] for o in options]
    if any(not ids for ids in option_ids):
        raise InputError(f"an option tokenizes to nothing: {list(options)!r}")
    sequences = [prompt_ids + ids for ids in option_ids]
    width = max(len(s) for s in sequences)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention[row, : len(seq)] = 1
    device = next(model.parameters()).device
    with torch.no_grad():
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
    logprobs = torch.log_softmax(logits, dim=-1).cpu()
    scores = []
    start = len(prompt_ids)
    for row, ids in enumerate(option_ids):
        # token at position p is predicted by the logits at position p - 1
        positions = torch.arange(start, start + len(ids))
        token_lp = logprobs[row, positions - 1, torch.tensor(ids)]
        total = float(token_lp.sum())
        scores.append(total / len(ids) if reduction == "mean" else total)
    return scores


def choose_by_loglik(model, tokenizer, prompt: str, options: dict[str, str] | Sequence[str], *,
                     reduction: str = "sum") -> str:
    """The option key (letter) or label with the highest ``option_logprobs`` score (first on ties)."""
    keys = list(options) if isinstance(options, dict) else [str(o) for o in options]
    texts = [options[k] for k in keys] if isinstance(options, dict) else keys
    scores = option_logprobs(model, tokenizer, prompt, texts, reduction=reduction)
    best = max(range(len(keys)), key=lambda i: (scores[i], -i))
    return keys[best]
