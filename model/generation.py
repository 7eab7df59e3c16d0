"""The one greedy decoding loop of BioMedGPT: ``greedy(LeanLlama(llm, "int8"), embeds, mask, Decoding(...), ...)``.

Use it through ``BioMedGPT.generate`` / ``generate_ids`` (``model/biomedgpt.py``), which splice the structures into
``inputs_embeds`` and call this; nothing else decodes the BioMedGPT LM.

Why not transformers' ``generate``: on a CPU the LM's answer is the longest wait of the assistant, and one decoding
step is bound by reading the weights once. ``generate`` spends about a third of each step in Python around the
matmuls (logits processors, cache objects, mask building, 7 separate projections per layer) and reads fp32
weights. :class:`LeanLlama` is the same Llama forward written directly, as in nanoGPT or gpt-fast: fused q/k/v and
gate/up projections, a preallocated KV cache, SDPA, logits for the last position only (the prompt's 300 positions
times a 49,152-word vocabulary are never computed), and weights read as int8 where the CPU makes that fast
(``model/quantize.py``). With fp32 weights it computes what transformers computes (a parity test compares the
tokens with ``generate``'s).

:func:`greedy` carries every stop condition in one place, per row of a batch: EOS; stop strings (``"\\n"`` for a
one-paragraph answer, ``"###"`` for the released turn separator); a looping n-gram (``stop_repeat_ngram`` tokens
seen ``stop_repeat_times`` times: the answer ends before the loop goes on, issue 15); ``max_new_tokens``; a deadline (``max_time``); and
cancellation (``core.cancel``: checked between layers, so Ctrl-C stops even a long prefill). Rows that finish
leave the batch, so a batch costs what its live rows cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from biomedgpt.core.cancel import check_cancelled
from biomedgpt.core.errors import ConfigError
from biomedgpt.model.quantize import resolve_weight_format, weight_bytes, weight_matmul

#: Stop an answer when an n-gram of ``REPEAT_STOP_NGRAM`` tokens occurs for the ``REPEAT_STOP_TIMES``-th time: a small
#: model loops instead of ending (issue 15). Why not "a 6-gram repeats", as issue 15 proposed: 62 % of ChEBI-20
#: descriptions repeat a 6-gram of SmolLM2 tokens legitimately ("... It is a member of ... It is a member of ..."),
#: and on a dev slice (ChEBI-20 test rows 501-600, never trained on, not the evaluation slice) that rule cut
#: BLEU-2 from 0.358 to 0.232; a 4-gram's 4th occurrence (7 % of descriptions) keeps BLEU-2 at 0.352 and METEOR
#: at 0.431 and raises ROUGE-L from 0.437 to 0.455: it ends loops, not sentences.
REPEAT_STOP_NGRAM = 4
REPEAT_STOP_TIMES = 4
#: Positions the KV cache holds beyond the prompt at first; it doubles when a long answer needs more.
INITIAL_CACHE_TOKENS = 256
#: Tokens decoded again to look for a stop string that may span tokens (stop strings are a few characters).
STOP_WINDOW = 8


@dataclass(frozen=True)
class Decoding:
    """What one greedy call may generate and when each row stops. Every field is off at its default except
    ``max_new_tokens``."""

    max_new_tokens: int = 64
    min_new_tokens: int = 0  # EOS is suppressed before this many tokens (as transformers does)
    stop_strings: tuple[str, ...] = ()  # a row ends once its text holds one (the caller cuts the text there)
    stop_repeat_ngram: int = 0  # a row ends when its last n tokens occurred ``stop_repeat_times`` times (the last
    stop_repeat_times: int = 2  # occurrence, from its first token on, is dropped)
    no_repeat_ngram_size: int = 0  # transformers' ban: a token that would repeat an n-gram is never chosen
    repetition_penalty: float = 1.0  # transformers' penalty on the scores of tokens already generated
    max_time: float | None = None  # seconds from the call: every row ends at the first step past it

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty must be positive, got {self.repetition_penalty}")


@dataclass
class Generated:
    """One row's new tokens (EOS included when it ended the row, as transformers returns it) and why it ended:
    ``eos``, ``stop`` (a stop string), ``repeat`` (a repeated n-gram, removed), ``length`` or ``deadline``."""

    ids: list[int] = field(default_factory=list)
    reason: str = ""
    _grams: dict = field(default_factory=dict, repr=False)
    _banned: dict = field(default_factory=dict, repr=False)


# ------------------------------------------------------------------------------------------------ the model
@dataclass
class _Layer:
    input_norm: Any
    qkv: Any
    o: Any
    post_norm: Any
    gate_up: Any
    down: Any


class LeanLlama:
    """A Llama-family decoder for generation only, built over a loaded ``LlamaForCausalLM`` (its norms and rotary
    embedding are used as they are; its projections are read fused, in ``weights`` format ``auto``/``int8``/``fp32``).

    It holds references to the LM's fp32 tensors, plus int8 copies of the projections in int8 format (a quarter of
    their size); it never changes the LM."""

    def __init__(self, llm: Any, weights: str = "auto") -> None:
        config = llm.config
        backbone = getattr(llm, "model", None)
        layers = getattr(backbone, "layers", None)
        if layers is None or not hasattr(layers[0], "self_attn") or not hasattr(layers[0].self_attn, "q_proj"):
            raise ConfigError(f"the generation loop reads Llama-family LMs; {type(llm).__name__} is not one")
        if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
            raise ConfigError("the generation loop reads Llama LMs without projection biases")
        if getattr(config, "hidden_act", "silu") != "silu":
            raise ConfigError(f"the generation loop reads SiLU MLPs; this LM uses {config.hidden_act}")
        embed = llm.get_input_embeddings().weight
        self.format = resolve_weight_format(weights, embed.device)
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.embed = embed.detach()
        self.rotary = backbone.rotary_emb
        self.norm = backbone.norm
        fmt = self.format
        self.layers = []
        for layer in layers:
            check_cancelled()  # quantizing takes a second or two: Ctrl-C stops it between layers
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(_Layer(
                layer.input_layernorm,
                weight_matmul(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight, fmt=fmt),
                weight_matmul(attn.o_proj.weight, fmt=fmt),
                layer.post_attention_layernorm,
                weight_matmul(mlp.gate_proj.weight, mlp.up_proj.weight, fmt=fmt),
                weight_matmul(mlp.down_proj.weight, fmt=fmt)))
        self.lm_head = weight_matmul(llm.get_output_embeddings().weight, fmt=fmt)

    def weight_bytes(self) -> int:
        """Bytes of weights one decoding step reads (projections and the LM head)."""
        matmuls = [m for layer in self.layers for m in (layer.qkv, layer.o, layer.gate_up, layer.down)]
        return sum(weight_bytes(m) for m in [*matmuls, self.lm_head])

    def new_cache(self, rows: int, positions: int) -> list[tuple[Tensor, Tensor]]:
        shape = (rows, self.kv_heads, positions, self.head_dim)
        return [(self.embed.new_zeros(shape), self.embed.new_zeros(shape)) for _ in self.layers]

    def forward(self, x: Tensor, positions: Tensor, cache: list[tuple[Tensor, Tensor]], start: int,
                key_mask: Tensor | None) -> Tensor:
        """Run ``x`` [B, T, H] at cache positions ``start:start+T`` (rotary ``positions`` [B, T]); returns the final
        hidden state of the last position [B, H]. ``key_mask`` [B, ≥ start+T] is False on padding (None: none)."""
        rows, length, _ = x.shape
        end = start + length
        cos, sin = self.rotary(x, positions)
        causal = length > 1
        mask = None
        if key_mask is not None:
            keys = key_mask[:, None, None, :end]  # [B, 1, 1, end]
            if causal:
                query_at = torch.arange(start, end, device=x.device)[:, None]
                key_at = torch.arange(end, device=x.device)[None, :]
                # a padding query sees itself only (its output is never used; an empty row would be NaN)
                mask = (keys & (key_at <= query_at)) | (key_at == query_at)
            else:
                mask = keys
            causal = False
        elif causal and start:
            raise ConfigError("a multi-token step after the prompt needs a key mask")
        heads, kv_heads, head_dim, half = self.heads, self.kv_heads, self.head_dim, self.head_dim // 2
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # [B, T, 1, head_dim]: one rotation for q and k together
        prefill = length > 1
        for layer, (k_cache, v_cache) in zip(self.layers, cache):
            if prefill:
                check_cancelled()  # a long prompt stops between layers; a decoding step is checked by the loop
            qkv = layer.qkv(_rms(x, layer.input_norm)).to(x.dtype).view(rows, length, heads + 2 * kv_heads, head_dim)
            qk, v = qkv[:, :, : heads + kv_heads], qkv[:, :, heads + kv_heads:]
            qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), dim=-1) * sin  # transformers' rotate_half
            k_cache[:, :, start:end] = qk[:, :, heads:].transpose(1, 2)
            v_cache[:, :, start:end] = v.transpose(1, 2)
            attended = F.scaled_dot_product_attention(qk[:, :, :heads].transpose(1, 2), k_cache[:, :, :end],
                                                      v_cache[:, :, :end], attn_mask=mask, is_causal=causal,
                                                      enable_gqa=kv_heads != heads)
            x = x + layer.o(attended.transpose(1, 2).reshape(rows, length, heads * head_dim))
            gate, up = layer.gate_up(_rms(x, layer.post_norm)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return _rms(x[:, -1], self.norm)

    def logits(self, hidden: Tensor) -> Tensor:
        return self.lm_head(hidden).float()


def _rms(x: Tensor, norm: Any) -> Tensor:
    """transformers' ``LlamaRMSNorm`` as one fused op (the same fp32 arithmetic for fp32 ``x``)."""
    if x.dtype != torch.float32:
        return norm(x)
    return F.rms_norm(x, norm.weight.shape, norm.weight, norm.variance_epsilon)


# ------------------------------------------------------------------------------------------------- the loop
def _choose(logits: Tensor, rows: list[Generated], decoding: Decoding, eos_ids: tuple[int, ...]) -> list[int]:
    """The greedy token of each live row after the penalty, the n-gram ban and the EOS floor."""
    penalty, ban = decoding.repetition_penalty, decoding.no_repeat_ngram_size
    if penalty != 1.0 or ban or decoding.min_new_tokens:
        logits = logits.clone()
        for i, row in enumerate(rows):
            if penalty != 1.0 and row.ids:
                seen = torch.tensor(sorted(set(row.ids)), device=logits.device)
                scores = logits[i, seen]
                logits[i, seen] = torch.where(scores < 0, scores * penalty, scores / penalty)
            if ban and len(row.ids) >= ban - 1:
                banned = row._banned.get(tuple(row.ids[len(row.ids) - ban + 1:]))
                if banned:
                    logits[i, list(banned)] = float("-inf")
            if len(row.ids) < decoding.min_new_tokens and eos_ids:
                logits[i, list(eos_ids)] = float("-inf")
    return logits.argmax(dim=-1).tolist()


def _finished(row: Generated, token: int, decoding: Decoding, eos_ids: tuple[int, ...], tokenizer: Any) -> str:
    """Append ``token`` to ``row`` and return why the row ends now ("" while it goes on)."""
    row.ids.append(token)
    ids = row.ids
    if token in eos_ids:
        return "eos"
    ban = decoding.no_repeat_ngram_size
    if ban and len(ids) >= ban:
        row._banned.setdefault(tuple(ids[len(ids) - ban:-1]), set()).add(token)
    n = decoding.stop_repeat_ngram
    if n and len(ids) >= n:
        gram = tuple(ids[len(ids) - n:])
        seen = row._grams[gram] = row._grams.get(gram, 0) + 1
        if seen >= decoding.stop_repeat_times:
            del ids[len(ids) - n:]
            return "repeat"
    if decoding.stop_strings and tokenizer is not None:
        tail = tokenizer.decode(ids[-STOP_WINDOW:], skip_special_tokens=True)
        if any(stop in tail for stop in decoding.stop_strings):
            return "stop"
    if len(ids) >= decoding.max_new_tokens:
        return "length"
    return ""


@torch.no_grad()
def greedy(decoder: LeanLlama, inputs_embeds: Tensor, attention_mask: Tensor, decoding: Decoding, *,
           eos_ids: tuple[int, ...] = (), tokenizer: Any = None, timings: dict | None = None) -> list[Generated]:
    """Greedy answers for a left-padded batch (``attention_mask`` 0 exactly on padding), one :class:`Generated` per
    row. ``tokenizer`` decodes for the stop strings. ``timings`` (a dict) receives ``prefill_s`` (the prompt to the
    first token), ``decode_s`` and ``decode_steps`` (the steps after it: what a decoding speed is measured on)."""
    check_cancelled()
    started = time.monotonic()
    rows, length, _ = inputs_embeds.shape
    capacity = length + min(decoding.max_new_tokens, INITIAL_CACHE_TOKENS)
    padded = not bool(attention_mask.all())
    key_mask = None
    if padded:
        key_mask = torch.zeros(rows, capacity, dtype=torch.bool, device=inputs_embeds.device)
        key_mask[:, :length] = attention_mask.bool()
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = decoder.new_cache(rows, capacity)
    results = [Generated() for _ in range(rows)]
    live = list(range(rows))  # which result each batch row feeds
    hidden = decoder.forward(inputs_embeds.to(decoder.embed.dtype), positions, cache, 0, key_mask)
    next_position = positions[:, -1] + 1
    start = length
    steps, decoding_since = 0, None
    while True:
        tokens = _choose(decoder.logits(hidden), [results[r] for r in live], decoding, eos_ids)
        if decoding_since is None:
            decoding_since = time.monotonic()
        keep = []
        for j, r in enumerate(live):
            reason = _finished(results[r], tokens[j], decoding, eos_ids, tokenizer)
            if reason:
                results[r].reason = reason
            else:
                keep.append(j)
        if not keep:
            break
        if decoding.max_time is not None and time.monotonic() - started > decoding.max_time:
            for j in keep:
                results[live[j]].reason = "deadline"
            break
        check_cancelled()
        if len(keep) < len(live):  # finished rows leave the batch
            index = torch.tensor(keep, device=inputs_embeds.device)
            cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache]
            next_position = next_position.index_select(0, index)
            key_mask = key_mask.index_select(0, index) if key_mask is not None else None
            live = [live[j] for j in keep]
        if start == cache[0][0].shape[2]:  # a long answer: double the cache
            grow = cache[0][0].shape[2]
            cache = [(torch.cat([k, torch.zeros_like(k)], 2), torch.cat([v, torch.zeros_like(v)], 2)) for k, v in cache]
            if key_mask is not None:
                key_mask = torch.cat([key_mask, key_mask.new_zeros(key_mask.shape[0], grow)], 1)
        if key_mask is not None:
            key_mask[:, start] = True
        chosen = torch.tensor([tokens[j] for j in keep], device=inputs_embeds.device)
        hidden = decoder.forward(decoder.embed[chosen][:, None, :], next_position[:, None], cache, start, key_mask)
        next_position = next_position + 1
        start += 1
        steps += 1
    if timings is not None:
        timings.update(prefill_s=decoding_since - started, decode_s=time.monotonic() - decoding_since,
                       decode_steps=steps)
    return results
