"""Metric cases worked out by hand, with a tiny WordPiece vocabulary the tests write.

Run: ``.venv/bin/python -m pytest -q tests/training``.
"""

from __future__ import annotations

import math
import os

import pytest

from biomedgpt.core.errors import InputError
from biomedgpt.training import metrics
from biomedgpt.training.evaluate import caption_metrics, exact_match, protein_qa_metrics

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "molecule", "is", "an", "a", "acid", "base",
              "sugar", "it", "has", "role", "as", "metabolite", "##s", ".", "protein", "kinase", "family", "of"]

# Two samples. WordPieces (the tiny vocabulary lower-cases and has every word):
#   1. ref  the molecule is an acid      hyp  the molecule is an acid      (identical)
#   2. ref  the molecule is a base       hyp  the sugar is a base
# Corpus BLEU-2 (NLTK corpus_bleu, no smoothing): clipped n-gram counts are summed over the corpus.
#   unigrams: 5/5 + 4/5 (the, is, a, base)            -> p1 = 9/10
#   bigrams:  4/4 + 2/4 (is a, a base)                -> p2 = 6/8 = 3/4
#   hypothesis length 10 = reference length 10        -> brevity penalty 1
#   BLEU-2 = sqrt(9/10 * 3/4) = sqrt(0.675) = 0.821584
# BLEU-4 adds trigrams 3/3 + 1/3 (is a base) = 4/6 and 4-grams 2/2 + 0/2 = 2/4:
#   BLEU-4 = (0.9 * 0.75 * 2/3 * 0.5) ** (1/4) = 0.225 ** 0.25 = 0.688725
# ROUGE (raw strings, F-measure, averaged): sample 1 scores 1 everywhere; sample 2: 4 of 5 unigrams
#   (P = R = 0.8, F = 0.8), 2 of 4 bigrams (F = 0.5), LCS "the is a base" = 4 (F = 0.8).
#   rouge1 = (1 + 0.8)/2 = 0.9; rouge2 = (1 + 0.5)/2 = 0.75; rougeL = 0.9.
# METEOR (alpha 0.9, beta 3, gamma 0.5), per sample then averaged:
#   1. 5 matches in 1 chunk: Fmean = 1, penalty = 0.5 * (1/5)^3 = 0.004 -> 0.996
#   2. 4 matches (the | is a base: 2 chunks), P = R = 0.8 -> Fmean = 0.8,
#      penalty = 0.5 * (2/4)^3 = 0.0625 -> 0.8 * 0.9375 = 0.75
#   mean = (0.996 + 0.75) / 2 = 0.873
REFS = ["The molecule is an acid", "The molecule is a base"]
HYPS = ["the molecule is an acid", "the sugar is a base"]


@pytest.fixture()
def tiny_vocab(tmp_path):
    folder = tmp_path / "tiny_vocab"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    return folder


@pytest.fixture()
def tiny_tokenizer(tiny_vocab):
    tokenizer = metrics.load_text_tokenizer(tiny_vocab, expected_size=None)
    assert len(tokenizer) == len(TINY_VOCAB)
    return tokenizer


def _wordnet_or_skip():
    ok, note = metrics.wordnet_status()
    if not ok:
        pytest.skip(note)


def test_bleu_and_rouge_by_hand(tiny_tokenizer):
    result = caption_metrics(REFS, HYPS, tokenizer=tiny_tokenizer)
    assert result["n"] == 2
    assert result["bleu2"] == pytest.approx(math.sqrt(0.9 * 0.75), abs=1e-9)
    assert result["bleu4"] == pytest.approx(0.225 ** 0.25, abs=1e-9)
    assert result["rouge1"] == pytest.approx(0.9)
    assert result["rouge2"] == pytest.approx(0.75)
    assert result["rougeL"] == pytest.approx(0.9)
    assert set(metrics.TEXT_KEYS) <= set(result)


def test_meteor_by_hand(tiny_tokenizer):
    _wordnet_or_skip()
    result = caption_metrics(REFS, HYPS, tokenizer=tiny_tokenizer)
    assert result["meteor"] == pytest.approx((0.996 + 0.75) / 2)
    assert "note" not in result


def test_openbiomed_v2_uses_smoothed_sentence_bleu(tiny_tokenizer):
    # Per-sample BLEU, averaged. Sample 1 = 1.0. Sample 2: p1 = 4/5, p2 = 2/4 -> BLEU-2 = sqrt(0.4);
    # BLEU-4 has p3 = 1/3 and no matching 4-gram: NLTK method 1 replaces 0/2 by 0.1/2 = 0.05, so
    # BLEU-4 = (0.8 * 0.5 * 1/3 * 0.05) ** 0.25 = 0.285744.
    result = caption_metrics(REFS, HYPS, tokenizer=tiny_tokenizer, protocol="openbiomed-v2")
    assert result["bleu2"] == pytest.approx((1 + math.sqrt(0.4)) / 2)
    assert result["bleu4"] == pytest.approx((1 + (0.8 * 0.5 / 3 * 0.05) ** 0.25) / 2)
    with pytest.raises(InputError, match="bert-base-uncased"):
        caption_metrics(REFS, HYPS, protocol="openbiomed-v2")  # no vocabulary shipped: must be given


def test_wordpieces_follow_molt5(tiny_tokenizer):
    # lower-cased WordPieces, unknown words -> [UNK], specials written as text dropped, 512 cap
    assert metrics.wordpieces(tiny_tokenizer, ["[CLS] The Acids is DNA [SEP]"]) == [["the", "acid", "##s", "is", "[UNK]"]]
    assert len(metrics.wordpieces(tiny_tokenizer, [" ".join(["acid"] * 600)])[0]) == 512
    # A leading "[CLS] " in a prediction is stripped before scoring (MolT5 does the same).
    same = caption_metrics(["the acid"], ["[CLS] the acid"], tokenizer=tiny_tokenizer)
    assert same["bleu2"] == pytest.approx(1.0) and same["rouge1"] == pytest.approx(1.0)


def test_shipped_scibert_vocab_has_31090_entries():
    tokenizer = metrics.load_text_tokenizer()  # the default: the shipped SciBERT uncased folder
    assert len(tokenizer) == 31090
    # The transformers-5 trap (BertTokenizerFast(vocab_file=...)) maps every word to [UNK]; not here.
    assert metrics.wordpieces(tokenizer, ["The molecule is an acid"]) == [["the", "molecule", "is", "an", "acid"]]


def test_wrong_vocabulary_size_is_a_clear_error(tiny_vocab):
    with pytest.raises(InputError, match=r"24 tokens, expected 31090"):
        caption_metrics(REFS, HYPS, vocab=tiny_vocab)
    with pytest.raises(InputError, match="no vocab.txt"):
        metrics.load_text_tokenizer(tiny_vocab.parent / "missing")


def test_meteor_is_null_with_note_without_wordnet(tiny_tokenizer, tmp_path, monkeypatch):
    import nltk

    empty = tmp_path / "empty_nltk_data"
    empty.mkdir()
    monkeypatch.setattr(nltk.data, "path", [str(empty)])
    result = caption_metrics(REFS, HYPS, tokenizer=tiny_tokenizer)
    assert result["meteor"] is None  # never 0
    assert "WordNet" in result["note"]
    assert result["bleu2"] == pytest.approx(math.sqrt(0.675))  # the other metrics are unaffected


def test_wordnet_is_installed_for_meteor():
    """Fails (does not skip) under CI when WordNet is missing; skips only on a user's machine."""
    ok, note = metrics.wordnet_status()
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs WordNet for METEOR: {note}")
        pytest.skip(note)
    from nltk.translate.meteor_score import meteor_score

    assert round(meteor_score([["the", "molecule", "is", "an", "acid"]], ["the", "molecule", "is", "acids"]), 4) == 0.7653
    # "sick" matches "ill" only through WordNet synonyms: 4 matches in 1 chunk -> 1 - 0.5 * (1/4)^3
    assert meteor_score([["the", "man", "is", "ill"]], ["the", "man", "is", "sick"]) == pytest.approx(0.9921875)


def test_exact_match_and_per_question_type(tiny_tokenizer):
    refs = ["Protein kinase family.", "the acid", "a base"]
    preds = ["protein  kinase family", "the base", "A base!"]
    kinds = ["family", "name", "name"]
    assert exact_match(refs, preds) == pytest.approx(2 / 3)  # case, punctuation and spaces normalised
    result = protein_qa_metrics(refs, preds, kinds, tokenizer=tiny_tokenizer)
    assert result["exact_match"] == pytest.approx(2 / 3)
    assert result["by_question"]["family"]["n"] == 1
    assert result["by_question"]["family"]["exact_match"] == 1.0
    assert result["by_question"]["name"]["exact_match"] == 0.5
    assert result["by_question"]["family"]["rouge1"] == pytest.approx(1.0)


def test_length_mismatch_is_an_error(tiny_tokenizer):
    with pytest.raises(InputError, match="2 references but 1 predictions"):
        caption_metrics(REFS, HYPS[:1], tokenizer=tiny_tokenizer)
