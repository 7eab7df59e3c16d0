"""The tool-aware chat template written into the converted SmolLM2 (model/lm.py).

It must render tools Hermes-style, render everything else exactly as the GGUF's own template did (the mini
model's prompts are unchanged), come with a response template that ``transformers serve`` parses tool calls
with and that never fails on a malformed reply, and reach caches converted before it existed.
"""

from __future__ import annotations

import json

import pytest

from biomedgpt.model.lm import (
    CONVERSION_MARKER,
    SMOLLM2_CACHE,
    SMOLLM2_CHAT_TEMPLATE,
    SMOLLM2_RESPONSE_TEMPLATE,
    SMOLLM2_TEMPLATE_VERSION,
    check_conversion,
    ensure_smollm2,
    template_renders_tools,
    tiny_tokenizer,
    write_conversion_stamp,
)

#: The template inside SmolLM2-135M-Instruct.Q4_1.gguf (what conversions before version 2 wrote).
GGUF_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
TOOLS = [{"type": "function", "function": {"name": "pubchem_lookup", "description": "Look up a compound.",
                                           "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                                          "required": ["query"]}}}]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()  # the template is text: any tokenizer carries it


def _render(tokenizer, template, messages, **kwargs):
    tokenizer.chat_template = template
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)
    finally:
        tokenizer.chat_template = None


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "What is this molecule?"}],
    [{"role": "system", "content": "You are BioMedGPT."}, {"role": "user", "content": "<molecule>\nq"},
     {"role": "assistant", "content": "It is a benzoic acid."}, {"role": "user", "content": "And its mass?"}],
    [{"role": "user", "content": "a\nb"}, {"role": "assistant", "content": "c"}],
])
@pytest.mark.parametrize("generation", [True, False])
def test_without_tools_the_prompt_is_unchanged(tokenizer, messages, generation):
    assert (_render(tokenizer, SMOLLM2_CHAT_TEMPLATE, messages, add_generation_prompt=generation)
            == _render(tokenizer, GGUF_TEMPLATE, messages, add_generation_prompt=generation))


def test_tools_calls_and_results_render_hermes_style(tokenizer):
    messages = [{"role": "system", "content": "You are BioMedGPT."}, {"role": "user", "content": "Describe aspirin"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"type": "function", "id": "c1", "function": {"name": "pubchem_lookup",
                                                                  "arguments": {"query": "aspirin"}}}]},
                {"role": "tool", "content": "aspirin [PubChem CID 2244]", "tool_call_id": "c1"}]
    text = _render(tokenizer, SMOLLM2_CHAT_TEMPLATE, messages, tools=TOOLS, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are BioMedGPT.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOLS[0]) + "\n</tools>" in text
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "pubchem_lookup", "arguments": {"query": "aspirin"}}\n'
            "</tool_call><|im_end|>\n") in text
    assert "<|im_start|>user\n<tool_response>\naspirin [PubChem CID 2244]\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n") and text.count("You are BioMedGPT.") == 1
    tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    assert template_renders_tools(tokenizer)
    tokenizer.chat_template = GGUF_TEMPLATE
    assert not template_renders_tools(tokenizer)  # the old template silently drops the tools
    tokenizer.chat_template = None


@pytest.mark.parametrize("reply, content, calls", [
    ('<tool_call>\n{"name": "pubchem_lookup", "arguments": {"query": "aspirin"}}\n</tool_call><|im_end|>',
     None, [("pubchem_lookup", {"query": "aspirin"})]),
    ('Let me check.\n<tool_call>\n{"name": "pubchem_lookup", "arguments": {"query": "a"}}\n</tool_call><|im_end|>',
     "Let me check.", [("pubchem_lookup", {"query": "a"})]),
    ("Aspirin is an NSAID.<|im_end|>", "Aspirin is an NSAID.", []),
    # arguments that are not JSON stay a string (clients report a malformed call); the server does not fail
    ('<tool_call>\n{"name": "pubchem_lookup", "arguments": {"query": aspirin}}\n</tool_call><|im_end|>',
     None, [("pubchem_lookup", ' {"query": aspirin}')]),
    # other shapes and calls cut off by max_tokens stay text (biomedgpt's own parser reads them)
    ('<tool_call>\n{"name": "pubchem_lookup", "argu', '<tool_call>\n{"name": "pubchem_lookup", "argu', []),
    ('<tool_call>{"arguments": {}, "name": "x"}</tool_call><|im_end|>',
     '<tool_call>{"arguments": {}, "name": "x"}</tool_call>', []),
])
def test_the_response_template_reads_replies_and_never_fails(tokenizer, reply, content, calls):
    parsed = tokenizer.parse_response(reply, SMOLLM2_RESPONSE_TEMPLATE, prefix="<|im_start|>assistant\n",
                                      tools=TOOLS)
    assert parsed.get("content") == content
    found = [(c["function"]["name"], c["function"]["arguments"]) for c in parsed.get("tool_calls") or []]
    assert [(n, a.strip() if isinstance(a, str) else a) for n, a in found] == [
        (n, a.strip() if isinstance(a, str) else a) for n, a in calls]


def test_a_cache_converted_before_the_template_gets_it_in_place(tmp_path, monkeypatch, tokenizer):
    from biomedgpt.core.settings import reset_settings

    monkeypatch.setenv("BIOMEDGPT_HOME", str(tmp_path))
    reset_settings()
    folder = tmp_path / "models" / SMOLLM2_CACHE
    tokenizer.save_pretrained(folder)  # an old cache: the tokenizer without the tool template
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"weights stay as they are")
    write_conversion_stamp(folder, {"source": "SmolLM2-135M-Instruct.Q4_1.gguf", "dtype": "bfloat16"})
    weights = (folder / "model.safetensors").stat().st_mtime_ns
    assert ensure_smollm2() == folder
    stamp = json.loads((folder / CONVERSION_MARKER).read_text())
    assert stamp["template"] == SMOLLM2_TEMPLATE_VERSION and stamp["source"].endswith(".gguf")
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights
    from transformers import AutoTokenizer

    upgraded = AutoTokenizer.from_pretrained(folder)
    assert upgraded.chat_template == SMOLLM2_CHAT_TEMPLATE and template_renders_tools(upgraded)
    assert upgraded.response_template == SMOLLM2_RESPONSE_TEMPLATE
    check_conversion(folder)  # the new stamp covers the new files
    before = (folder / CONVERSION_MARKER).stat().st_mtime_ns
    ensure_smollm2()  # current: nothing is rewritten
    assert (folder / CONVERSION_MARKER).stat().st_mtime_ns == before
