"""Packing and masking rules: whole sentences per sequence, EOS between documents, loss on answers only."""

from __future__ import annotations

import torch

from biomedgpt.model.lm import tiny_tokenizer
from biomedgpt.training.collate import (
    IGNORE_INDEX,
    Example,
    PadCollator,
    encode_prompt_answer,
    pack_corpus,
    pack_sentences,
    sentence_token_ids,
)

DOCS = [
    "Aspirin inhibits cyclooxygenase. It reduces fever and pain. Platelets aggregate less.",
    "Insulin lowers blood glucose. The pancreas secretes it.",
]


def test_pack_sentences_keeps_sentences_whole_and_marks_document_ends():
    docs = [[[1, 2, 3], [4, 5]], [[6, 7, 8, 9]], [[10] * 9]]
    packed = pack_sentences(docs, context_length=6, eos_id=0)
    # doc 1 = [1,2,3] [4,5,EOS] fits in 6; doc 2 [6,7,8,9,EOS] opens a new sequence; doc 3 is cut by tokens
    assert packed == [[1, 2, 3, 4, 5, 0], [6, 7, 8, 9, 0], [10] * 6, [10, 10, 10, 0]]
    assert all(len(seq) <= 6 for seq in packed)


def test_sentence_ids_concatenate_to_the_whole_document_tokens():
    tokenizer = tiny_tokenizer()
    sentences = sentence_token_ids(DOCS[0], tokenizer)
    assert len(sentences) == 3
    whole = tokenizer(DOCS[0], add_special_tokens=False)["input_ids"]
    assert [t for s in sentences for t in s] == whole
    assert tokenizer.decode(sentences[1]).strip().startswith("It reduces")


def test_pack_corpus_loses_no_token_and_respects_the_context():
    tokenizer = tiny_tokenizer()
    packed = pack_corpus(DOCS, tokenizer, context_length=24)
    assert all(len(seq) <= 24 for seq in packed)
    flat = torch.cat(packed).tolist()
    expected = []
    for doc in DOCS:
        expected += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert flat == expected


def test_prompt_answer_labels_only_the_answer_and_eos():
    tokenizer = tiny_tokenizer()
    ex = encode_prompt_answer(tokenizer, "Question: what? Answer:", "B", max_length=64)
    answer = tokenizer("B", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n = len(answer)
    assert ex.labels[-n:].tolist() == answer
    assert (ex.labels[:-n] == IGNORE_INDEX).all()
    assert ex.input_ids[-n:].tolist() == answer


def test_long_prompts_lose_tokens_on_the_left():
    tokenizer = tiny_tokenizer()
    prompt = "word " * 200 + "final question"
    ex = encode_prompt_answer(tokenizer, prompt, "A", max_length=32)
    assert len(ex.input_ids) == 32
    assert tokenizer.decode(ex.input_ids[:-2]).rstrip().endswith("final question")


def test_pad_collator_masks_padding():
    batch = PadCollator(pad_id=9)([torch.tensor([1, 2, 3]), Example(torch.tensor([4, 5]), torch.tensor([IGNORE_INDEX, 5]))])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [IGNORE_INDEX, 5, IGNORE_INDEX]]
