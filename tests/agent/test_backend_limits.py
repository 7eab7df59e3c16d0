"""The chat back ends' limits (agent/backends.py: call_chat_model) against loopback servers: max_tokens in every
request, the first-token timeout, the whole-reply deadline, one retry only for connections that could not be made,
finish_reason=length reported, tool calls written as text parsed for openai:, a stream cut mid-answer, and hf:'s
own limits. Bounds are asserted with a 3x margin, never as speeds."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from langchain_core.messages import HumanMessage
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.backends import (
    BackendError,
    ChatLimits,
    call_chat_model,
    make_chat_model,
    reply_info,
    split_tool_calls,
)
from biomedgpt.core.settings import Settings
from tests.agent.helpers import TEST_TOOLS

ASK = [HumanMessage("What is the formula of CCO?")]


def _chunk(delta: dict, finish: str | None = None) -> str:
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n"


def _openai(monkeypatch, base_url: str, **settings) -> tuple:
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    chosen = Settings(**settings)
    return make_chat_model("openai:m", chosen), ChatLimits.from_settings(chosen)


def test_max_tokens_reaches_every_server(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        _chunk({"role": "assistant", "content": "C2H6O [RDKit]."}, "stop") + "data: [DONE]\n\n",
        content_type="text/event-stream")
    model, limits = _openai(monkeypatch, httpserver.url_for("/v1"), llm_max_tokens=77)
    reply = call_chat_model(model, ASK, backend="openai:m", limits=limits)
    assert reply.content == "C2H6O [RDKit]." and reply_info(reply)["finish_reason"] == "stop"
    body = json.loads(httpserver.log[0][0].get_data())
    assert body["max_completion_tokens"] == 77 and body["stream"] is True
    ollama = make_chat_model("ollama:llama3.1", Settings(llm_max_tokens=77))
    assert ollama.num_predict == 77


def test_no_first_token_in_time_is_an_error_within_the_bound(monkeypatch):
    server = _Closer(silent=True)  # takes the request and says nothing
    try:
        model, limits = _openai(monkeypatch, f"http://127.0.0.1:{server.port}/v1", llm_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(BackendError, match=r"sent no token within the 0.5 s first-token timeout "
                                               r"\(BIOMEDGPT_LLM_TIMEOUT\)") as caught:
            call_chat_model(model, ASK, backend="openai:m", limits=limits)
        assert time.monotonic() - start < 1.5 and "\n" not in str(caught.value)
        assert server.accepted == 1  # never sent twice
    finally:
        server.close()


def test_the_deadline_cuts_a_reply_that_goes_on(httpserver: HTTPServer, monkeypatch):
    def forever(request: Request) -> Response:
        def chunks():
            yield _chunk({"role": "assistant", "content": "The"})
            for _ in range(200):
                time.sleep(0.05)
                yield _chunk({"content": " loop"})
        return Response(chunks(), content_type="text/event-stream")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(forever)
    model, limits = _openai(monkeypatch, httpserver.url_for("/v1"), llm_deadline=1.0)
    start = time.monotonic()
    reply = call_chat_model(model, ASK, backend="openai:m", limits=limits)
    assert time.monotonic() - start < 3.0
    info = reply_info(reply)
    assert info["finish_reason"] == "deadline" and info["truncated"] is True
    assert reply.content.startswith("The loop")


def test_finish_reason_length_is_reported_through_the_answer(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        _chunk({"role": "assistant", "content": "CCO has a TPSA of 20.23 [RDKit] and"}, "length") + "data: [DONE]\n\n",
        content_type="text/event-stream")
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("BIOMEDGPT_LLM", "openai:m")
    monkeypatch.setenv("BIOMEDGPT_LLM_MAX_TOKENS", "16")
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    result = Assistant().ask("What is the TPSA of CCO?")  # router: the model writes from RDKit's record
    assert result.answer_source == "llm" and result.truncated is True
    assert result.answer.startswith("CCO has a TPSA of 20.23 [RDKit] and")
    assert "cut at the 16-token limit" in result.answer and result.ungrounded == []


def test_text_tool_calls_are_parsed_for_openai(httpserver: HTTPServer, monkeypatch):
    text = 'Let me compute.\n<tool_call>\n{"name": "rdkit_properties", "arguments": {"smiles": "CCO"}}\n</tool_call>'
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        _chunk({"role": "assistant", "content": text}, "stop"), content_type="text/event-stream")
    model, limits = _openai(monkeypatch, httpserver.url_for("/v1"))
    reply = call_chat_model(model, ASK, backend="openai:m", limits=limits, tools=TEST_TOOLS)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("rdkit_properties", {"smiles": "CCO"})]
    assert reply.content == "Let me compute."
    sent = json.loads(httpserver.log[0][0].get_data())
    assert {t["function"]["name"] for t in sent["tools"]} == {t.name for t in TEST_TOOLS}


def test_malformed_and_unknown_text_calls_are_kept_for_the_report():
    content, calls, invalid = split_tool_calls(
        '<tool_call>{"name": "nope", "arguments": {}}</tool_call><tool_call>{"name": "x", "arguments": {1}}</tool_call>')
    assert [c["name"] for c in calls] == ["nope"]
    assert [(c["name"], c["type"]) for c in invalid] == [("x", "invalid_tool_call")]
    assert "not valid JSON" in invalid[0]["error"] and content == ""


class _Closer:
    """A TCP server that accepts a connection and closes it at once (no response), counting connections; with
    ``partial`` it first answers with headers and one streamed chunk (a server dying mid-answer); with ``silent``
    it keeps the connection open and never answers."""

    def __init__(self, partial: bool = False, silent: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.partial = partial
        self.silent = silent
        self.open: list = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.silent:
                self.open.append(connection)  # kept open, never answered
                continue
            if self.partial:
                connection.recv(65536)
                first = _chunk({"role": "assistant", "content": "Ethanol is"}).encode()
                connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                   b"transfer-encoding: chunked\r\n\r\n" + f"{len(first):x}\r\n".encode() + first
                                   + b"\r\n")
                time.sleep(0.2)
            connection.close()

    def close(self) -> None:
        for connection in self.open:
            connection.close()
        self.sock.close()


def test_a_connection_that_cannot_be_made_is_tried_once_more_only(monkeypatch):
    server = _Closer()
    try:
        model, limits = _openai(monkeypatch, f"http://127.0.0.1:{server.port}/v1")
        with pytest.raises(BackendError, match="cannot connect") as caught:
            call_chat_model(model, ASK, backend="openai:m", limits=limits)
        assert server.accepted == 2 and "\n" not in str(caught.value)
    finally:
        server.close()


def test_a_server_error_is_not_retried(httpserver: HTTPServer, monkeypatch):
    httpserver.expect_request("/v1/chat/completions").respond_with_data("overloaded", status=503)
    model, limits = _openai(monkeypatch, httpserver.url_for("/v1"))
    with pytest.raises(BackendError, match=r"chat back end 'openai:m' failed: .*503"):
        call_chat_model(model, ASK, backend="openai:m", limits=limits)
    assert len(httpserver.log) == 1


def test_a_stream_cut_mid_answer_is_one_line(monkeypatch):
    server = _Closer(partial=True)
    try:
        model, limits = _openai(monkeypatch, f"http://127.0.0.1:{server.port}/v1")
        with pytest.raises(BackendError) as caught:
            call_chat_model(model, ASK, backend="openai:m", limits=limits)
        message = str(caught.value)
        assert message.startswith("chat back end 'openai:m' failed mid-answer") and "\n" not in message
        assert server.accepted == 1  # a reply that started is never retried
    finally:
        server.close()


def test_hf_backend_limits(monkeypatch):
    """hf: reports finish_reason length at max_new_tokens and stops at its deadline (max_time)."""
    from biomedgpt.agent.backends import HFChatModel, resolve_device
    from biomedgpt.model import load_model

    assert resolve_device("auto") in ("cpu", "cuda") and resolve_device("cpu") == "cpu"
    model = load_model("tiny")
    tokenizer = model.tokenizer
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}\n{% endfor %}"
    try:
        chat = HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny", max_new_tokens=3)
        reply = call_chat_model(chat, ASK, backend="hf:tiny", limits=ChatLimits())
        assert reply_info(reply)["finish_reason"] == "length" and reply_info(reply)["truncated"] is True
        assert reply.usage_metadata["output_tokens"] == 3
        wide = HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny", max_new_tokens=500)
        short = call_chat_model(wide, ASK, backend="hf:tiny", limits=ChatLimits(max_tokens=500), max_tokens=2)
        assert short.usage_metadata["output_tokens"] == 2 and wide.max_new_tokens == 500  # capped for one reply
        assert reply_info(short)["finish_reason"] == "length"
        timed = HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny", max_new_tokens=500, max_time=1e-6)
        assert reply_info(call_chat_model(timed, ASK, backend="hf:tiny", limits=ChatLimits()))["finish_reason"] == \
            "deadline"
        late = HFChatModel.from_objects(model.llm, tokenizer, name="hf:tiny", max_new_tokens=5,
                                        first_token_timeout=1e-9)
        with pytest.raises(BackendError, match="no first token"):
            call_chat_model(late, ASK, backend="hf:tiny", limits=ChatLimits())
    finally:
        tokenizer.chat_template = None


def test_a_cancelled_question_stops_waiting_for_the_model(monkeypatch):
    """Ctrl-C (core/cancel.py) ends the wait for a reply at once; it is not reported as a back-end failure."""
    from biomedgpt.core.cancel import Cancelled, cancel_scope

    server = _Closer(silent=True)
    try:
        model, limits = _openai(monkeypatch, f"http://127.0.0.1:{server.port}/v1")
        with cancel_scope() as stop:
            threading.Timer(0.3, stop.set).start()
            start = time.monotonic()
            with pytest.raises(Cancelled):
                call_chat_model(model, ASK, backend="openai:m", limits=limits)
        assert time.monotonic() - start < 2.0
    finally:
        server.close()


def test_router_mode_asks_the_server_for_a_short_lead(httpserver: HTTPServer, monkeypatch):
    """Router mode: the request carries the lead's own token limit (agent/modes.py LEAD_MAX_TOKENS), far below
    BIOMEDGPT_LLM_MAX_TOKENS, and the answer is the lead followed by the composed, cited facts."""
    from biomedgpt.agent.modes import LEAD_MAX_TOKENS

    lead = "Here is what the records say about the TPSA of CCO."
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        _chunk({"role": "assistant", "content": lead}, "stop") + "data: [DONE]\n\n", content_type="text/event-stream")
    monkeypatch.setenv("OPENAI_BASE_URL", httpserver.url_for("/v1"))
    monkeypatch.setenv("BIOMEDGPT_LLM", "openai:m")
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    result = Assistant().ask("What is the TPSA of CCO?")
    [(request, _)] = httpserver.log
    body = json.loads(request.get_data())
    assert body["max_completion_tokens"] == LEAD_MAX_TOKENS < Settings().llm_max_tokens
    assert not any("[RDKit]" in str(m["content"]) for m in body["messages"])  # no record in the prompt
    assert result.answer_source == "llm" and result.ungrounded == [] and result.truncated is False
    assert result.answer.startswith(f"{lead}\n\n") and "20.23" in result.answer and "[RDKit]" in result.answer


def test_capped_lowers_each_back_end_s_own_limit():
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    from biomedgpt.agent.backends import capped

    ollama = make_chat_model("ollama:llama3.1", Settings(llm_max_tokens=512))
    assert capped(ollama, 48).num_predict == 48 and ollama.num_predict == 512  # a copy; the original is kept
    assert capped(ollama, 1000) is ollama  # never raised
    fake = GenericFakeChatModel(messages=iter([]))
    assert capped(fake, 48) is fake  # no limit field: as it is
