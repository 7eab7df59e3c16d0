"""Chat back ends against loopback fakes of the OpenAI chat-completions API and Ollama's /api/chat.

The fakes answer in each API's documented wire format (SSE chunks for OpenAI streaming, NDJSON for
Ollama), first with a tool call, then — once the tool result is in the request — with the answer.
"""

from __future__ import annotations

import json

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner
from werkzeug import Request, Response

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.backends import BackendError, make_chat_model, parse_spec, parse_tool_calls
from biomedgpt.core.errors import ConfigError
from tests.agent.helpers import TEST_TOOLS

SECRET = "sk-test-do-not-log-0123456789"
FINAL = "Ethanol has formula C2H6O [RDKit]."


@pytest.fixture(autouse=True)
def _model_picks_tools(monkeypatch):
    """The scripted chat models here call tools themselves: ``model`` mode (agent/modes.py)."""
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")


def _has_tool_result(body: dict) -> bool:
    return any(m.get("role") == "tool" for m in body["messages"])


def _openai_handler(request: Request) -> Response:
    body = json.loads(request.get_data())
    if _has_tool_result(body):
        delta, finish = {"role": "assistant", "content": FINAL}, "stop"
        message = {"role": "assistant", "content": FINAL}
    else:
        call = {"id": "call_1", "type": "function",
                "function": {"name": "rdkit_properties", "arguments": json.dumps({"smiles": "CCO"})}}
        delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]}
        message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    base = {"id": "chatcmpl-1", "created": 1700000000, "model": body["model"]}
    if body.get("stream"):
        chunks = [{**base, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                  {**base, "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}]
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return Response(sse, content_type="text/event-stream")
    reply = {**base, "object": "chat.completion",
             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
             "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
    return Response(json.dumps(reply), content_type="application/json")


def _ollama_handler(request: Request) -> Response:
    body = json.loads(request.get_data())
    stamp = "2025-01-01T00:00:00Z"
    if _has_tool_result(body):
        message = {"role": "assistant", "content": FINAL}
    else:
        message = {"role": "assistant", "content": "",
                   "tool_calls": [{"function": {"name": "rdkit_properties", "arguments": {"smiles": "CCO"}}}]}
    lines = [{"model": body["model"], "created_at": stamp, "message": message, "done": False},
             {"model": body["model"], "created_at": stamp, "message": {"role": "assistant", "content": ""},
              "done": True, "done_reason": "stop", "total_duration": 1, "eval_count": 1, "prompt_eval_count": 1}]
    if not body.get("stream", True):
        lines = [{**lines[0], "done": True, "done_reason": "stop"}]
    return Response("".join(json.dumps(line) + "\n" for line in lines), content_type="application/x-ndjson")


def test_openai_backend_calls_tools_and_keeps_key_secret(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(_openai_handler)
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("BIOMEDGPT_LLM", "openai:biomedgpt-lm-7b")
    result = Assistant(tools=TEST_TOOLS).ask("What is the formula of CCO?")
    assert result.tool_calls == [{"name": "rdkit_properties", "args": {"smiles": "CCO"}, "ok": True, "error": None}]
    assert result.answer.startswith(FINAL)
    assert [c["label"] for c in result.citations] == ["RDKit"]
    requests = [r for r, _ in httpserver.log]
    assert len(requests) == 2
    assert all(r.headers["Authorization"] == f"Bearer {SECRET}" for r in requests)
    first = json.loads(requests[0].get_data())
    assert first["model"] == "biomedgpt-lm-7b"
    assert {t["function"]["name"] for t in first["tools"]} == {t.name for t in TEST_TOOLS}
    assert SECRET not in result.to_json()


def test_ollama_backend_calls_tools(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(_ollama_handler)
    monkeypatch.setenv("OLLAMA_HOST", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("BIOMEDGPT_LLM", "ollama:llama3.1")
    result = Assistant(tools=TEST_TOOLS).ask("What is the formula of CCO?")
    assert [(c["name"], c["args"], c["ok"]) for c in result.tool_calls] == [("rdkit_properties", {"smiles": "CCO"}, True)]
    assert result.answer.startswith(FINAL)
    assert result.artifacts["properties"][0]["formula"] == "C2H6O"
    bodies = [json.loads(r.get_data()) for r, _ in httpserver.log]
    assert bodies[0]["model"] == "llama3.1" and bodies[0]["tools"]
    assert any(m["role"] == "tool" for m in bodies[1]["messages"])


def test_failing_backend_is_named_not_replaced(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/v1/chat/completions").respond_with_data("boom", status=500)
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("BIOMEDGPT_LLM", "openai:broken-model")
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RETRIES", "0")
    with pytest.raises(BackendError, match="openai:broken-model"):
        Assistant(tools=TEST_TOOLS).ask("What is CCO?")
    # the CLI says which back end failed, in one line, and never prints the key
    from biomedgpt.cli import app

    out = CliRunner().invoke(app, ["ask", "What is CCO?", "--json"])
    assert out.exit_code == 1
    assert "chat back end 'openai:broken-model' failed" in out.output
    assert len(out.output.strip().splitlines()) == 1  # which back end and why, in one line
    assert SECRET not in out.output and "Traceback" not in out.output


def test_a_back_end_that_cannot_start_says_which_and_why_in_one_line(monkeypatch):
    import biomedgpt.agent.backends as backends

    def broken(model, settings):
        raise ValueError("2 validation errors\n  base_url\n    not a URL")

    monkeypatch.setattr(backends, "_openai", broken)
    with pytest.raises(BackendError) as caught:
        make_chat_model("openai:m")
    assert str(caught.value) == ("chat back end 'openai:m' could not start: ValueError: 2 validation errors "
                                 "base_url not a URL")
    from biomedgpt.cli import app
    from biomedgpt.core.settings import reset_settings

    monkeypatch.setenv("BIOMEDGPT_LLM", "hf:/nonexistent/model")
    reset_settings()

    out = CliRunner().invoke(app, ["ask", "What is CCO?", "--json"])
    assert out.exit_code == 1 and len(out.output.strip().splitlines()) == 1, out.output
    assert "chat back end 'hf:/nonexistent/model'" in out.output and "no such model folder" in out.output


def test_specs_and_missing_key(monkeypatch):
    assert parse_spec("none") == ("none", "") and parse_spec("offline") == ("none", "")  # the old name still works
    assert parse_spec("ollama:llama3.1:8b") == ("ollama", "llama3.1:8b")
    with pytest.raises(ConfigError, match="not a known back end"):
        parse_spec("gpt4")
    with pytest.raises(ConfigError, match="names no model"):
        parse_spec("openai:")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="needs OPENAI_API_KEY"):
        make_chat_model("openai:gpt-4o")
    with pytest.raises(BackendError, match="no such model folder"):
        make_chat_model("hf:/nonexistent/model")
    assert make_chat_model("none") is None and make_chat_model("offline") is None


@pytest.mark.parametrize("text, expected", [
    ('<tool_call>{"name": "pubchem_lookup", "arguments": {"query": "aspirin"}}</tool_call>',
     [("pubchem_lookup", {"query": "aspirin"})]),
    ('Let me check.\n```json\n{"name": "uniprot_lookup", "parameters": {"query": "P05067"}}\n```',
     [("uniprot_lookup", {"query": "P05067"})]),
    ('{"function": {"name": "pubchem_lookup", "arguments": "{\\"query\\": \\"caffeine\\"}"}}',
     [("pubchem_lookup", {"query": "caffeine"})]),
    ('[{"name": "pubchem_lookup", "args": {"query": "a"}}, {"name": "uniprot_lookup", "args": {"query": "b"}}]',
     [("pubchem_lookup", {"query": "a"}), ("uniprot_lookup", {"query": "b"})]),
    ('<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', [("rm_rf", {})]),  # kept: the graph reports it
    ("Aspirin is an NSAID {not json}.", []),
])
def test_parse_tool_calls(text, expected):
    content, calls = parse_tool_calls(text, allowed=["pubchem_lookup", "uniprot_lookup"])
    assert [(c["name"], c["args"]) for c in calls] == expected
    assert all(c["id"].startswith("call_") for c in calls)
    if expected:
        assert "tool_call" not in content and "{" not in content


@pytest.fixture(scope="module")
def biomedgpt_tiny_chat():
    """``BIOMEDGPT_LLM=biomedgpt:tiny``, built once for the module (the model load dominates the time)."""
    return make_chat_model("biomedgpt:tiny")


def test_biomedgpt_backend_reads_structures_and_context(biomedgpt_tiny_chat):
    """``biomedgpt:tiny`` answers in its chat format; SMILES in the question go to the molecule encoder."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from biomedgpt.agent.backends import BiomedGPTChatModel, _split_conversation

    messages = [SystemMessage("sys"), HumanMessage("Describe CCO"), AIMessage("Ethanol."),
                HumanMessage("And CC(=O)Oc1ccccc1C(=O)O?"),
                AIMessage("", tool_calls=[{"name": "rdkit_properties", "args": {"smiles": "CCO"}, "id": "c1"}]),
                ToolMessage("C9H8O4 [RDKit]", tool_call_id="c1", name="rdkit_properties")]
    question, history, context = _split_conversation(messages)
    assert question == "And CC(=O)Oc1ccccc1C(=O)O?"
    assert history == [("Describe CCO", "Ethanol.")]
    assert context == ["rdkit_properties returned: C9H8O4 [RDKit]"]

    chat = biomedgpt_tiny_chat
    assert isinstance(chat, BiomedGPTChatModel)
    seen = {}
    original = chat._model.ask

    def spy(question, **kwargs):  # records what the real model was given, then runs it
        seen.update(kwargs, question=question)
        return original(question, **{**kwargs, "max_new_tokens": 8})

    chat._model.ask = spy
    try:
        reply = chat.bind_tools(TEST_TOOLS).invoke(messages)
    finally:
        del chat._model.ask
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str)
    assert seen["question"] == "And CC(=O)Oc1ccccc1C(=O)O?"
    assert seen["smiles"] == ["CC(=O)Oc1ccccc1C(=O)O"] and seen["sequence"] is None
    assert seen["history"] == [("Describe CCO", "Ethanol.")]
    assert "rdkit_properties returned: C9H8O4" in seen["context"] and "<tool_call>" in seen["context"]


CHAT_TEMPLATE = (
    "{% if tools %}<|tools|>{{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def test_hf_backend_generates_with_tools_in_the_template(biomedgpt_tiny_chat):
    """``HFChatModel`` over a real (tiny) transformers LM: tools reach the chat template, output is parsed."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from biomedgpt.agent.backends import HFChatModel, to_chat_dicts
    model = biomedgpt_tiny_chat._model  # a real tiny Llama-family LM and its tokenizer
    tokenizer = model.tokenizer
    saved_template = tokenizer.chat_template
    tokenizer.chat_template = CHAT_TEMPLATE
    chat = HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny", max_new_tokens=4)
    rendered = tokenizer.apply_chat_template(
        to_chat_dicts([HumanMessage("Describe CCO")]), tools=[
            {"type": "function", "function": {"name": "rdkit_properties", "parameters": {}}}],
        add_generation_prompt=True, tokenize=False)
    assert '"rdkit_properties"' in rendered and rendered.endswith("<|assistant|>")
    reply = chat.bind_tools(TEST_TOOLS).invoke([HumanMessage("Describe CCO")])
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str)
    assert all(c["name"] in {t.name for t in TEST_TOOLS} for c in reply.tool_calls)
    history = to_chat_dicts([AIMessage("", tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c1"}]),
                             ToolMessage("ok", tool_call_id="c1", name="t")])
    assert history[0]["tool_calls"][0]["function"] == {"name": "t", "arguments": {"a": 1}}
    assert history[1] == {"role": "tool", "content": "ok", "name": "t", "tool_call_id": "c1"}
    tokenizer.chat_template = None
    with pytest.raises(BackendError, match="no chat template"):
        HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny")
    tokenizer.chat_template = saved_template
