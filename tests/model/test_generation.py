"""The one decoding loop (``model/generation.py``) and its int8 weights (``model/quantize.py``), on the tiny preset."""

from __future__ import annotations

import pytest
import torch

from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import Settings, use_settings
from biomedgpt.model.conversation import chat_prompt
from biomedgpt.model.generation import Decoding, Generated, LeanLlama, _finished, greedy
from biomedgpt.model.quantize import fast_bf16, quantize_rows, resolve_weight_format

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
needs_bf16 = pytest.mark.skipif(not fast_bf16(), reason="int8 weights run on CPUs with native bf16 only")


@torch.no_grad()
def test_lean_forward_equals_transformers_logits_in_fp32(tiny_model):
    batch = tiny_model.splice(chat_prompt("Describe it.", molecules=1), ASPIRIN)
    tokens = [5, 17, 42, 99]
    embed = tiny_model.llm.get_input_embeddings().weight
    full = torch.cat([batch.inputs_embeds, embed[tokens][None]], dim=1)
    expected = tiny_model.llm(inputs_embeds=full).logits[0, batch.inputs_embeds.shape[1] - 1:]
    decoder = LeanLlama(tiny_model.llm, "fp32")
    length = batch.inputs_embeds.shape[1]
    cache = decoder.new_cache(1, full.shape[1])
    got = [decoder.logits(decoder.forward(batch.inputs_embeds, torch.arange(length)[None], cache, 0, None))]
    for i, token in enumerate(tokens):
        got.append(decoder.logits(decoder.forward(embed[[token]][None], torch.tensor([[length + i]]), cache,
                                                  length + i, None)))
    assert torch.allclose(torch.cat(got), expected, atol=1e-5)


@torch.no_grad()
def test_fp32_greedy_tokens_equal_transformers_generate_on_a_padded_batch(tiny_model):
    prompts = [chat_prompt("What is this molecule?", molecules=1), chat_prompt("Hi")]
    molecules = [[ASPIRIN], None]
    batch = tiny_model.splice(prompts, molecules, padding_side="left")
    assert not batch.attention_mask.all()  # the second row is padded
    expected = tiny_model.llm.generate(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                       max_new_tokens=12, do_sample=False, pad_token_id=tiny_model.tokenizer.pad_token_id,
                                       eos_token_id=tiny_model.tokenizer.eos_token_id)
    with use_settings(Settings(lm_weights="fp32")):
        got = tiny_model.generate_ids(prompts, molecules, max_new_tokens=12)
    assert got.tolist() == expected[:, : got.shape[1]].tolist()


def test_int8_rows_reconstruct_within_half_a_step():
    weight = torch.randn(64, 48) * torch.linspace(0.01, 3.0, 64)[:, None]  # rows of very different ranges
    q, scale = quantize_rows(weight)
    assert q.dtype == torch.int8 and q.abs().max() == 127
    assert ((q.float() * scale[:, None] - weight).abs() <= scale[:, None] / 2 + 1e-6).all()


@needs_bf16
@torch.no_grad()
def test_int8_weights_read_a_quarter_of_the_bytes_and_keep_the_logits_close(tiny_model):
    batch = tiny_model.splice(chat_prompt("Describe it.", molecules=1), ASPIRIN)
    positions = torch.arange(batch.inputs_embeds.shape[1])[None]
    outputs = {}
    for fmt in ("fp32", "int8"):
        decoder = LeanLlama(tiny_model.llm, fmt)
        cache = decoder.new_cache(1, positions.shape[1])
        outputs[fmt] = (decoder, decoder.logits(decoder.forward(batch.inputs_embeds, positions, cache, 0, None)))
    (dense, exact), (packed, approx) = outputs["fp32"], outputs["int8"]
    assert packed.weight_bytes() < dense.weight_bytes() / 3.5
    assert (approx - exact).abs().max() < 0.05 * exact.abs().max()


def test_weight_formats_resolve_and_an_impossible_int8_says_why():
    assert resolve_weight_format("auto") == ("int8" if fast_bf16() else "fp32")
    assert resolve_weight_format("fp32") == "fp32"
    assert resolve_weight_format("auto", "cuda") == "fp32"
    with pytest.raises(ConfigError, match="int8 runs on CPUs with native bf16 only; this is a GPU"):
        resolve_weight_format("int8", "cuda")
    with pytest.raises(ConfigError, match="not one of auto, int8, fp32"):
        resolve_weight_format("int4")


def test_a_repeated_ngram_ends_the_row_before_the_repeat():
    row, rules = Generated(), Decoding(max_new_tokens=50, stop_repeat_ngram=3)
    stream = [1, 2, 3, 4, 5, 1, 2, 3]  # "1 2 3" again: the answer ends after 5
    reasons = [_finished(row, token, rules, eos_ids=(0,), tokenizer=None) for token in stream]
    assert reasons[:-1] == [""] * 7 and reasons[-1] == "repeat"
    assert row.ids == [1, 2, 3, 4, 5]


def test_the_default_loop_stop_lets_a_phrase_recur_and_ends_a_loop():
    from biomedgpt.model.generation import REPEAT_STOP_NGRAM, REPEAT_STOP_TIMES

    rules = Decoding(max_new_tokens=200, stop_repeat_ngram=REPEAT_STOP_NGRAM, stop_repeat_times=REPEAT_STOP_TIMES)
    phrase = [7, 8, 9, 10]  # "It is a member of", as ChEBI-20 descriptions say two or three times
    prose = phrase + [20] + phrase + [21] + phrase + [22]
    row = Generated()
    assert all(_finished(row, token, rules, (0,), None) == "" for token in prose)
    loop, fed = Generated(), 0
    for token in [5] + phrase * 6:
        fed += 1
        if _finished(loop, token, rules, (0,), None) == "repeat":
            break
    assert fed == 1 + 4 * REPEAT_STOP_TIMES  # the fourth "It is a member of" ends it ...
    assert loop.ids == [5] + phrase * (REPEAT_STOP_TIMES - 1)  # ... and is dropped


def test_eos_length_and_the_ngram_ban():
    rules = Decoding(max_new_tokens=3)
    row = Generated()
    assert [_finished(row, t, rules, (9,), None) for t in (4, 5, 6)] == ["", "", "length"]
    row = Generated()
    assert [_finished(row, t, rules, (9,), None) for t in (4, 9)] == ["", "eos"] and row.ids == [4, 9]
    banned = Generated()
    ban = Decoding(max_new_tokens=10, no_repeat_ngram_size=2)
    for token in (7, 8, 7):
        _finished(banned, token, ban, (), None)
    assert banned._banned[(7,)] == {8}  # after "7" the loop may not choose 8 again


@torch.no_grad()
def test_stop_strings_deadline_and_min_tokens_end_rows(tiny_model):
    prompt = chat_prompt("Describe it.", molecules=1)
    with use_settings(Settings(lm_weights="fp32")):
        free = tiny_model.generate_rows(prompt, ASPIRIN, max_new_tokens=30, min_new_tokens=30)[0]
        assert len(free.ids) == 30 and free.reason == "length"
        text = tiny_model.tokenizer.decode(free.ids[:12], skip_special_tokens=True)
        stop = text.strip()[-2:]  # a string the free run writes: the stopped run must end right there
        stopped = tiny_model.generate_rows(prompt, ASPIRIN, max_new_tokens=30, stop_strings=[stop])[0]
        assert stopped.reason == "stop" and len(stopped.ids) <= 12 and stopped.ids == free.ids[: len(stopped.ids)]
        late = tiny_model.generate_rows(prompt, ASPIRIN, max_new_tokens=30, min_new_tokens=30, max_time=0.0)[0]
        assert late.reason == "deadline" and len(late.ids) == 1
    with pytest.raises(ConfigError, match="unknown generation option.*top_k"):
        tiny_model.generate_rows(prompt, ASPIRIN, top_k=5)
    with pytest.raises(ConfigError, match="greedily"):
        tiny_model.generate_rows(prompt, ASPIRIN, do_sample=True)


@torch.no_grad()
def test_the_decoder_is_rebuilt_when_a_weight_changes(tiny_model):
    with use_settings(Settings(lm_weights="fp32")):
        first = tiny_model.decoder()
        assert tiny_model.decoder() is first
        with torch.no_grad():
            tiny_model.llm.lm_head.weight.mul_(1.0)  # an optimizer step changes weights in place like this
        assert tiny_model.decoder() is not first


@torch.no_grad()
def test_rows_that_finish_leave_the_batch_without_changing_the_others(tiny_model):
    prompts = [chat_prompt("What is this molecule?", molecules=1), chat_prompt("Hi"), chat_prompt("Describe it.")]
    molecules = [[ASPIRIN], None, None]
    batch = tiny_model.splice(prompts, molecules, padding_side="left")
    with use_settings(Settings(lm_weights="fp32")):
        decoder = tiny_model.decoder()
    rules = Decoding(max_new_tokens=10)
    free = [greedy(decoder, *_single(tiny_model, p, m), rules)[0].ids for p, m in zip(prompts, molecules)]
    end = (free[0][1],)  # as EOS, the first row's second token ends that row early
    alone = [greedy(decoder, *_single(tiny_model, p, m), rules, eos_ids=end)[0] for p, m in zip(prompts, molecules)]
    assert len(alone[0].ids) == 2 and max(len(row.ids) for row in alone) > 2  # the batch shrinks mid-way
    together = greedy(decoder, batch.inputs_embeds, batch.attention_mask, rules, eos_ids=end)
    assert [(row.ids, row.reason) for row in together] == [(row.ids, row.reason) for row in alone]


def _single(model, prompt, molecules):
    batch = model.splice(prompt, molecules, padding_side="left")
    return batch.inputs_embeds, batch.attention_mask
