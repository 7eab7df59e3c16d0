"""Chat-model back ends chosen by one setting, ``BIOMEDGPT_LLM``: ``make_chat_model(spec)``; every reply goes
through :func:`call_chat_model`, which holds the limits.

Specs:
- ``none`` (default; ``offline`` is the old name and still accepted): no chat model; the router picks the
  tools and the answer node composes an extractive answer (``make_chat_model`` returns ``None``).
- ``openai:MODEL``: langchain-openai; ``OPENAI_BASE_URL`` points it at any OpenAI-compatible server
  (vLLM, ``transformers serve``, ``biomedgpt serve-llm``); ``OPENAI_API_KEY`` comes from the environment and
  is never logged or echoed.
- ``ollama:MODEL``: langchain-ollama; the server is ``OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
- ``hf:PATH``: a local transformers chat model (:class:`HFChatModel`) on ``BIOMEDGPT_DEVICE``.
- ``biomedgpt:PATH``: the multimodal BioMedGPT model's language model as a chat model.

Limits, the same for every back end (``core/settings.py``), and separate from the PubChem/UniProt HTTP
settings: ``llm_max_tokens`` (sent as ``max_tokens``/``num_predict``/``max_new_tokens``), ``llm_timeout``
(seconds to the first token) and ``llm_deadline`` (seconds for the whole reply; a longer reply is cut there).
A reply that stopped at either limit is marked truncated (``finish_reason`` ``length`` or ``deadline``).
Requests are retried only when the connection could not be made, and only once: a server that takes a
request and is slow is never sent a second one.

Tool calls a model writes as text (``<tool_call>{...}</tool_call>``, fenced JSON, a bare JSON object) are
parsed for every back end, ``openai:`` included (servers without a tool-call parser return them as text).
A call to a tool that does not exist is kept, so the graph reports it; one whose arguments are not JSON is
an ``invalid_tool_call`` with the reason.

No silent fallback: a back end that cannot be built or that fails raises :class:`BackendError` naming it
and the reason in one line; nothing quietly switches to another service.
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_chunk_to_message,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from biomedgpt.core.cancel import Cancelled, cancelled
from biomedgpt.core.errors import BiomedGPTError, ConfigError
from biomedgpt.core.settings import Settings, get_settings

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
#: The spec for "no chat model" and the names it is still accepted under.
NO_LLM = "none"
_NO_LLM_NAMES = ("none", "offline")


class BackendError(BiomedGPTError):
    """The configured chat back end failed; the message names it and says why (no silent fallback)."""


def parse_spec(spec: str | None) -> tuple[str, str]:
    """``"openai:gpt-4o"`` → ``("openai", "gpt-4o")``; ``"none"`` (or the old ``"offline"``) → ``("none", "")``."""
    spec = (spec or NO_LLM).strip()
    kind, _, target = spec.partition(":")
    kind = kind.lower()
    if kind in _NO_LLM_NAMES and not target:
        return NO_LLM, ""
    if kind not in ("openai", "ollama", "hf", "biomedgpt"):
        raise ConfigError(f"BIOMEDGPT_LLM={spec!r} is not a known back end; use none, openai:MODEL, "
                          "ollama:MODEL, hf:PATH or biomedgpt:PATH")
    if not target:
        raise ConfigError(f"BIOMEDGPT_LLM={spec!r} names no model; write {kind}:MODEL")
    return kind, target


def make_chat_model(spec: str | None = None, settings: Settings | None = None) -> BaseChatModel | None:
    """The chat model for ``spec`` (default: ``settings.llm``), or ``None`` for ``none``."""
    settings = settings or get_settings()
    spec = spec or settings.llm
    kind, target = parse_spec(spec)
    if kind == NO_LLM:
        return None
    try:
        if kind == "openai":
            return _openai(target, settings)
        if kind == "ollama":
            return _ollama(target, settings)
        if kind == "hf":
            return HFChatModel.from_path(target, device=settings.device, max_new_tokens=settings.llm_max_tokens,
                                         first_token_timeout=settings.llm_timeout, max_time=settings.llm_deadline)
        return _biomedgpt(target, settings)
    except BiomedGPTError as error:
        if isinstance(error, BackendError):
            raise
        raise BackendError(f"chat back end {spec!r} could not start: {' '.join(str(error).split())}") from error
    except Exception as error:  # noqa: BLE001 - reported with the back end's name, in one line
        raise BackendError(f"chat back end {spec!r} could not start: {_one_line(error)}") from error


def _openai(model: str, settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI  # deferred: only for openai: back ends

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if not base_url:
            raise BackendError(f"chat back end 'openai:{model}' needs OPENAI_API_KEY in the environment "
                               "(or OPENAI_BASE_URL for a local OpenAI-compatible server)")
        key = "EMPTY"  # local servers such as vLLM accept any key
    # The client's own retries are off (they retry slow servers too, stacking abandoned requests on a
    # one-request-at-a-time server): call_chat_model retries a refused connection once. call_chat_model also
    # enforces the first-token timeout and the deadline; the client's timeout is only a backstop beyond them.
    timeout = _client_timeout(settings)
    return ChatOpenAI(model=model, base_url=base_url, api_key=key, max_retries=0, timeout=timeout, temperature=0,
                      max_tokens=settings.llm_max_tokens, stream_usage=True)


def _ollama(model: str, settings: Settings) -> BaseChatModel:
    from langchain_ollama import ChatOllama  # deferred: only for ollama: back ends

    host = os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    if "://" not in host:
        host = f"http://{host}"
    return ChatOllama(model=model, base_url=host, temperature=0, num_predict=settings.llm_max_tokens,
                      client_kwargs={"timeout": _client_timeout(settings)})


def _client_timeout(settings: Settings) -> Any:
    """The HTTP client's timeout for a chat server: a backstop a little beyond the deadline (call_chat_model
    enforces the first-token timeout and the deadline itself), never PubChem's read timeout."""
    return httpx.Timeout(settings.llm_deadline + 5.0, connect=min(10.0, settings.llm_timeout))


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything else as given."""
    if device != "auto":
        return device
    import torch  # deferred: torch loads in seconds; only a local model needs it

    return "cuda" if torch.cuda.is_available() else "cpu"


def _biomedgpt(path: str, settings: Settings) -> BaseChatModel:
    """The BioMedGPT multimodal model (a preset name or a saved folder) as a chat model."""
    from biomedgpt.model import load_model

    return BiomedGPTChatModel.from_model(load_model(path, device=resolve_device(settings.device)),
                                         name=f"biomedgpt:{path}", max_new_tokens=settings.llm_max_tokens)


# ----------------------------------------------------------------------------- limits and one reply


@dataclass(frozen=True)
class ChatLimits:
    """How long a reply may take: ``timeout`` seconds to its first token, ``deadline`` seconds in all."""

    timeout: float = 120.0
    deadline: float = 300.0
    max_tokens: int = 512

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatLimits:
        return cls(timeout=settings.llm_timeout, deadline=settings.llm_deadline, max_tokens=settings.llm_max_tokens)


#: Seconds between two looks at the reply queue (and at a cancelled question).
_POLL = 0.2
#: ``response_metadata`` key of the facts ``call_chat_model`` records about a reply.
REPLY_KEY = "biomedgpt"


def reply_info(message: BaseMessage) -> dict:
    """What :func:`call_chat_model` recorded about a reply: ``finish_reason``, ``truncated``, ``seconds``,
    ``output_tokens`` (empty for messages it did not produce)."""
    info = (getattr(message, "response_metadata", None) or {}).get(REPLY_KEY)
    return dict(info) if isinstance(info, dict) else {}


def _unwrap(model: Any) -> Any:
    while isinstance(model, RunnableBinding):
        model = model.bound
    return model


def _streams(model: Any) -> bool:
    """Whether the model streams tokens itself (servers do; local models answer in one piece)."""
    inner = _unwrap(model)
    return isinstance(inner, BaseChatModel) and type(inner)._stream is not BaseChatModel._stream


def _has_token(chunk: Any) -> bool:
    return bool(getattr(chunk, "content", None)) or bool(getattr(chunk, "tool_call_chunks", None))


def _is_connection_error(error: BaseException) -> bool:
    """A connection that could not be made (refused, reset before a byte, DNS): safe to try once more."""
    if isinstance(error, openai.APITimeoutError):
        return False
    if isinstance(error, openai.APIConnectionError):
        return True
    if isinstance(error, httpx.ConnectError):
        return True
    return isinstance(error, (ConnectionRefusedError, ConnectionAbortedError))


def _one_line(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    body = getattr(error, "body", None)
    if body and isinstance(body, (str, dict)) and str(body) not in text:
        text = f"{text} ({' '.join(str(body).split())})"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def describe_failure(backend: str, error: BaseException, tokens: int) -> str:
    """One line: which back end failed, when, and why."""
    where = os.environ.get("OPENAI_BASE_URL") if backend.startswith("openai:") else None
    if backend.startswith("ollama:"):
        where = os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    server = f" (server {where})" if where else ""
    if tokens:
        return (f"chat back end {backend!r} failed mid-answer, after {tokens} streamed chunks: the connection ended "
                f"({_one_line(error)}){server}")
    if _is_connection_error(error):
        return (f"chat back end {backend!r} failed: cannot connect{' to ' + where if where else ''} "
                f"({_one_line(error)}); is the server running?")
    return f"chat back end {backend!r} failed: {_one_line(error)}{server}"


def _run_stream(runnable: Any, messages: list, out: queue.Queue, stop: threading.Event) -> None:
    """Worker: stream the reply into ``out``; stop (closing the connection) as soon as ``stop`` is set."""
    iterator = None
    try:
        iterator = iter(runnable.stream(messages))
        for chunk in iterator:
            out.put(("chunk", chunk))
            if stop.is_set():
                break
    except BaseException as error:  # noqa: BLE001 - handed to the caller, which reports it
        out.put(("error", error))
        return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None and stop.is_set():
            try:
                close()  # ends the HTTP response: the server sees the client leave and stops generating
            except Exception:  # noqa: BLE001 - best effort
                pass
    out.put(("done", None))


def _start(runnable: Any, messages: list, stop: threading.Event) -> queue.Queue:
    out: queue.Queue = queue.Queue()
    context = contextvars.copy_context()  # LangGraph's run config (token streaming, callbacks) goes along
    threading.Thread(target=context.run, args=(_run_stream, runnable, messages, out, stop), daemon=True,
                     name="biomedgpt-chat").start()
    return out


def capped(model: Any, max_tokens: int) -> Any:
    """``model`` generating at most ``max_tokens`` tokens (a copy with its token limit field lowered:
    ``max_tokens``, ``num_predict`` or ``max_new_tokens``); a model with no such field is returned as it is."""
    inner = model
    if isinstance(inner, RunnableBinding) or not isinstance(inner, BaseChatModel):
        return model
    for name in ("max_tokens", "num_predict", "max_new_tokens"):
        if name in type(inner).model_fields:
            current = getattr(inner, name, None)
            if current is None or current > max_tokens:
                return inner.model_copy(update={name: max_tokens})
            return model
    return model


def call_chat_model(model: Any, messages: Sequence[BaseMessage], *, backend: str, limits: ChatLimits,
                    tools: Sequence[Any] | None = None, tool_choice: str | None = None,
                    max_tokens: int | None = None) -> AIMessage:
    """One reply of ``model`` (tools bound when given) within ``limits``; the reply's facts are in
    :func:`reply_info`. ``max_tokens`` lowers ``limits.max_tokens`` for this reply (a short one: router mode's
    lead sentence).

    The reply streams in a worker thread so the limits hold even while the server sends nothing: no token within
    ``limits.timeout`` seconds is a :class:`BackendError`; at ``limits.deadline`` the reply so far is kept and
    marked truncated (``finish_reason="deadline"``) and the connection is closed. A connection that cannot be made
    is tried once more; any other failure, or one after the reply started, is a ``BackendError`` at once.
    """
    if max_tokens is not None and max_tokens < limits.max_tokens:
        model = capped(model, max_tokens)
        limits = replace(limits, max_tokens=max_tokens)
    runnable = model
    offered: list[str] | None = None
    if tools is not None:
        offered = [t.name if isinstance(t, BaseTool) else convert_to_openai_tool(t)["function"]["name"] for t in tools]
        if tools:
            runnable = model.bind_tools(list(tools), tool_choice=tool_choice) if tool_choice else model.bind_tools(
                list(tools))
    streams = _streams(model)
    start = time.monotonic()
    first_limit = limits.timeout if streams else limits.deadline + limits.timeout
    finish: str | None = None
    for attempt in (1, 2):
        stop = threading.Event()
        out = _start(runnable, list(messages), stop)
        chunks: list[Any] = []
        first_token: float | None = None
        retry = False
        while True:
            now = time.monotonic()
            if first_token is None:
                until = min(start + first_limit, start + limits.deadline) if streams else start + first_limit
            else:
                until = start + limits.deadline
            try:  # in short waits, so that a cancelled question (Ctrl-C, core/cancel.py) stops at once
                kind, item = out.get(timeout=max(0.0, min(until - now, _POLL)))
            except queue.Empty:
                if cancelled():
                    stop.set()  # the worker closes the connection at its next chunk
                    raise Cancelled() from None
                if time.monotonic() < until:
                    continue
                stop.set()
                if first_token is None:
                    if streams and limits.timeout < limits.deadline:
                        which = f"the {limits.timeout:g} s first-token timeout (BIOMEDGPT_LLM_TIMEOUT)"
                    else:
                        which = f"the {limits.deadline:g} s deadline (BIOMEDGPT_LLM_DEADLINE)"
                    raise BackendError(f"chat back end {backend!r} sent no token within {which}; the request was "
                                       "abandoned")
                finish = "deadline"
                break
            if kind == "chunk":
                chunks.append(item)
                if first_token is None and _has_token(item):
                    first_token = time.monotonic()
            elif kind == "error":
                if isinstance(item, KeyboardInterrupt):  # Cancelled included: never a back-end failure
                    raise item
                if attempt == 1 and not chunks and _is_connection_error(item):
                    retry = True  # the request never reached a server: one more try
                    break
                if isinstance(item, BackendError):
                    raise item
                if isinstance(item, BiomedGPTError):
                    raise BackendError(f"chat back end {backend!r} failed: {item}") from item
                raise BackendError(describe_failure(backend, item, sum(1 for c in chunks if _has_token(c)))) from item
            else:  # done
                break
        if not retry:
            break
    reply = _assemble(chunks, finish, offered, limits)
    info = reply_info(reply)
    info.update(seconds=round(time.monotonic() - start, 3), backend=backend)
    reply.response_metadata[REPLY_KEY] = info
    return reply


def _assemble(chunks: list[Any], finish: str | None, offered: list[str] | None, limits: ChatLimits) -> AIMessage:
    """The streamed chunks as one ``AIMessage``: finish reason, truncation, text-form tool calls."""
    if not chunks:
        message = AIMessage(content="")
    else:
        total = chunks[0]
        for chunk in chunks[1:]:
            total = total + chunk
        message = message_chunk_to_message(total) if isinstance(total, AIMessageChunk) else total
        if not isinstance(message, AIMessage):
            message = AIMessage(content=str(getattr(message, "content", message)))
    reported = None
    for chunk in chunks:
        meta = getattr(chunk, "response_metadata", None) or {}
        reported = meta.get("finish_reason") or meta.get("done_reason") or reported
    own = reply_info(message)  # set by a local model (HFChatModel) for itself
    reason = finish or own.get("finish_reason") or reported
    usage = getattr(message, "usage_metadata", None) or {}
    tokens = usage.get("output_tokens") if isinstance(usage, dict) else None
    if reason is None and tokens is not None and tokens >= limits.max_tokens:
        reason = "length"
    truncated = reason in ("length", "deadline", "max_tokens")
    content = message.content if isinstance(message.content, str) else json.dumps(message.content)
    calls = list(message.tool_calls)
    invalid = list(message.invalid_tool_calls)
    if offered is not None and not calls and not invalid:
        content, calls, invalid = split_tool_calls(content)
    if truncated and calls and not own.get("finish_reason"):
        # a streamed call cut off by the limit parses as a call with partial arguments: report it as cut off
        last = calls.pop()
        invalid.append({"name": last["name"], "args": json.dumps(last["args"]), "id": last["id"],
                        "error": "cut off at the token limit or deadline", "type": "invalid_tool_call"})
    metadata = {k: v for k, v in (message.response_metadata or {}).items() if k != REPLY_KEY}
    metadata[REPLY_KEY] = {"finish_reason": reason, "truncated": truncated, "output_tokens": tokens}
    return AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid, id=message.id,
                     response_metadata=metadata, usage_metadata=message.usage_metadata)


# ----------------------------------------------------------------------------- tool-call parsing

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json|tool_call|tool)?\s*(.*?)```", re.S)
_NAME = re.compile(r'"(?:name|tool|tool_name)"\s*:\s*"([^"\n]{1,100})"')


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:16]}"


def _call_from_json(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name") or value.get("tool") or value.get("tool_name")
    args = value.get("arguments", value.get("parameters", value.get("args", {})))
    if not isinstance(name, str):
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError as error:
            return {"name": name, "args": args, "id": _new_id(), "error": f"arguments are not JSON ({error})",
                    "type": "invalid_tool_call"}
    if not isinstance(args, dict):
        return {"name": name, "args": json.dumps(args), "id": _new_id(), "error": "arguments are not a JSON object",
                "type": "invalid_tool_call"}
    return {"name": name, "args": args, "id": _new_id(), "type": "tool_call"}


def _calls_from_text(blob: str, tagged: bool = False) -> list[dict]:
    try:
        value = json.loads(blob)
    except json.JSONDecodeError as error:
        if not tagged:
            return []
        name = _NAME.search(blob)  # inside <tool_call> tags: a call, however malformed; report it
        return [{"name": name.group(1) if name else None, "args": blob, "id": _new_id(),
                 "error": f"not valid JSON ({error.msg}; possibly cut off)", "type": "invalid_tool_call"}]
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_json(item) for item in items]
    return [c for c in calls if c is not None]


def split_tool_calls(text: str) -> tuple[str, list[dict], list[dict]]:
    """Tool calls written as text → (remaining text, LangChain tool calls, invalid tool calls).

    Recognises ``<tool_call>{...}</tool_call>`` tags (Hermes/Qwen style; an unclosed last tag too), fenced
    JSON blocks and a reply that is a JSON object or list as a whole, in the ``{"name", "arguments" |
    "parameters" | "args"}`` and OpenAI ``{"function": {...}}`` shapes. Calls to tools that do not exist are
    kept (the graph reports them); a tagged call whose JSON cannot be read is an invalid call with the reason.
    """
    found: list[dict] = []
    remaining = text or ""
    for pattern, tagged in ((_TAGGED, True), (_FENCED, False)):
        matches = [(m.group(0), _calls_from_text(m.group(1), tagged)) for m in pattern.finditer(remaining)]
        matches = [(whole, c) for whole, c in matches if c]
        if matches:
            for whole, parsed in matches:
                found.extend(parsed)
                remaining = remaining.replace(whole, "")
            break
    if not found:
        found = _calls_from_text(remaining.strip())
        if found:
            remaining = ""
    calls = [c for c in found if c["type"] == "tool_call"]
    invalid = [c for c in found if c["type"] == "invalid_tool_call"]
    return remaining.strip(), calls, invalid


def parse_tool_calls(text: str, allowed: Sequence[str] | None = None) -> tuple[str, list[dict]]:
    """Well-formed tool calls written as text → (remaining text, LangChain tool calls).

    Calls to tools outside ``allowed`` are kept, not dropped: the graph reports them as calls to an unknown
    tool. ``allowed`` is accepted for compatibility. Malformed calls: :func:`split_tool_calls`.
    """
    content, calls, _invalid = split_tool_calls(text)
    return content, calls


# ----------------------------------------------------------------------------- local transformers model


def to_chat_dicts(messages: Sequence[BaseMessage]) -> list[dict]:
    """LangChain messages → the ``[{role, content, ...}]`` list that chat templates expect."""
    out: list[dict] = []
    for m in messages:
        content = m.content if isinstance(m.content, str) else json.dumps(m.content)
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": content})
        elif isinstance(m, HumanMessage):
            out.append({"role": "user", "content": content})
        elif isinstance(m, ToolMessage):
            out.append({"role": "tool", "content": content, "name": m.name or "", "tool_call_id": m.tool_call_id})
        elif isinstance(m, AIMessage):
            entry: dict[str, Any] = {"role": "assistant", "content": content}
            if m.tool_calls:
                entry["tool_calls"] = [{"type": "function", "id": c["id"],
                                        "function": {"name": c["name"], "arguments": c["args"]}} for c in m.tool_calls]
            out.append(entry)
        else:
            out.append({"role": "user", "content": content})
    return out


class _Clock:
    """A generation stopping criterion: stop when the first token came later than ``timeout`` (reported as an
    error) or the reply has run ``deadline`` seconds (kept, truncated)."""

    def __init__(self, timeout: float | None, deadline: float | None) -> None:
        self.start = time.monotonic()
        self.timeout, self.deadline = timeout, deadline
        self.calls = 0
        self.late = False
        self.expired = False
        self.stopped = False

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch  # deferred: see resolve_device

        self.calls += 1
        elapsed = time.monotonic() - self.start
        if self.calls == 1 and self.timeout is not None and elapsed > self.timeout:
            self.late = True
        elif self.deadline is not None and elapsed > self.deadline:
            self.expired = True
        self.stopped = cancelled()  # Ctrl-C (core/cancel.py)
        return torch.full((input_ids.shape[0],), self.late or self.expired or self.stopped, dtype=torch.bool,
                          device=input_ids.device)


class HFChatModel(BaseChatModel):
    """A local transformers causal LM as a LangChain chat model with ``bind_tools``.

    Why parse text: small local models have no native tool-call channel; the chat template is given the
    tools' JSON schemas (a template that ignores them is reported by ``biomedgpt doctor``) and the reply is
    parsed by :func:`split_tool_calls`. ``max_new_tokens``, ``first_token_timeout`` and ``max_time`` are the
    settings' ``llm_max_tokens``, ``llm_timeout`` and ``llm_deadline``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name_or_path: str
    max_new_tokens: int = 256
    first_token_timeout: float | None = None
    max_time: float | None = None
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @classmethod
    def from_path(cls, path: str, device: str = "auto", **kwargs: Any) -> HFChatModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer  # deferred: heavy, only for hf:

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise BackendError(f"chat back end 'hf:{path}': no such model folder (models are never downloaded)")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        return cls.from_objects(model.to(resolve_device(device)), tokenizer, name=f"hf:{path}", **kwargs)

    @classmethod
    def from_objects(cls, model: Any, tokenizer: Any, *, name: str, **kwargs: Any) -> HFChatModel:
        if getattr(tokenizer, "chat_template", None) is None:
            raise BackendError(f"chat back end {name!r}: the tokenizer has no chat template")
        chat = cls(name_or_path=name, **kwargs)
        chat._model = model.eval()
        chat._tokenizer = tokenizer
        return chat

    @property
    def _llm_type(self) -> str:
        return "biomedgpt-hf"

    def bind_tools(self, tools: Sequence[dict | type | Callable | BaseTool], **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, tools: list[dict] | None = None,
                  **kwargs: Any) -> ChatResult:
        import torch  # deferred: see resolve_device
        from transformers import StoppingCriteriaList  # deferred: heavy, only for hf:

        chat = to_chat_dicts(messages)
        encoded = self._tokenizer.apply_chat_template(chat, tools=tools or None, add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        device = next(self._model.parameters()).device
        encoded = {k: v.to(device) for k, v in encoded.items()}
        clock = _Clock(self.first_token_timeout, self.max_time)
        with torch.inference_mode():
            output = self._model.generate(**encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          stopping_criteria=StoppingCriteriaList([clock]),
                                          pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id)
        if clock.stopped:
            raise Cancelled()
        if clock.late:
            raise BackendError(f"chat back end {self.name_or_path!r} wrote no first token within "
                               f"{self.first_token_timeout:g} s (BIOMEDGPT_LLM_TIMEOUT)")
        new = output[0, encoded["input_ids"].shape[1]:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        eos = self._tokenizer.eos_token_id
        ended = len(new) > 0 and eos is not None and int(new[-1]) in (eos if isinstance(eos, list) else [eos])
        reason = "deadline" if clock.expired else ("length" if len(new) >= self.max_new_tokens and not ended
                                                   else "stop")
        for marker in stop or []:
            text = text.split(marker)[0]
        content, calls, invalid = split_tool_calls(text) if tools else (text.strip(), [], [])
        message = AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid,
                            response_metadata={"finish_reason": reason, REPLY_KEY: {"finish_reason": reason}},
                            usage_metadata={"input_tokens": int(encoded["input_ids"].shape[1]),
                                            "output_tokens": len(new),
                                            "total_tokens": int(encoded["input_ids"].shape[1]) + len(new)})
        return ChatResult(generations=[ChatGeneration(message=message)])


class BiomedGPTChatModel(BaseChatModel):
    """The multimodal BioMedGPT as a chat model, in its released ``### Human: … ### Assistant:`` format.

    Why it needs care: the model reads structures, not just text. SMILES and protein sequences in the
    latest question are recognised (the planner's recogniser, RDKit-validated) and given to the model
    as molecules/proteins; tool results go into the prompt's context block, earlier turns into its
    history. Bound tools are described in the context and the reply is parsed with
    :func:`split_tool_calls`, as for any local model without a native tool channel.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name_or_path: str
    max_new_tokens: int = 128
    _model: Any = PrivateAttr(default=None)

    @classmethod
    def from_model(cls, model: Any, *, name: str, **kwargs: Any) -> BiomedGPTChatModel:
        chat = cls(name_or_path=name, **kwargs)
        chat._model = model
        return chat

    @property
    def _llm_type(self) -> str:
        return "biomedgpt-multimodal"

    def bind_tools(self, tools: Sequence[dict | type | Callable | BaseTool], **kwargs: Any) -> Runnable:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, tools: list[dict] | None = None,
                  **kwargs: Any) -> ChatResult:
        from biomedgpt.agent.entities import recognise

        question, history, context = _split_conversation(messages)
        if tools:
            described = "; ".join(f"{t['function']['name']}: {t['function'].get('description', '')}" for t in tools)
            context.append("To call a tool, reply only with <tool_call>{\"name\": ..., \"arguments\": {...}}"
                           f"</tool_call>. Tools: {described}")
        found = [m.entity for m in recognise(question)]
        smiles = [e.value for e in found if e.source == "smiles"]
        sequences = [e.value for e in found if e.source == "sequence"]
        text = self._model.ask(question or "Hello.", smiles=smiles or None, sequence=sequences or None,
                               history=history or None, max_new_tokens=self.max_new_tokens,
                               context="\n".join(context) or None)
        for marker in stop or []:
            text = text.split(marker)[0]
        content, calls, invalid = split_tool_calls(text) if tools else (text.strip(), [], [])
        message = AIMessage(content=content, tool_calls=calls, invalid_tool_calls=invalid)
        return ChatResult(generations=[ChatGeneration(message=message)])


def _split_conversation(messages: Sequence[BaseMessage]) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(latest question, earlier (question, answer) pairs, context lines from system and tool messages)."""
    question, history, context = "", [], []
    pending: str | None = None
    for m in messages:
        text = m.content if isinstance(m.content, str) else json.dumps(m.content)
        if isinstance(m, SystemMessage):
            continue  # the model keeps its own released system prompt
        if isinstance(m, HumanMessage):
            if pending is not None:
                history.append((pending, ""))
            pending, context = text, []
        elif isinstance(m, ToolMessage):
            context.append(f"{m.name or 'tool'} returned: {text}")
        elif isinstance(m, AIMessage) and not m.tool_calls and pending is not None and text:
            history.append((pending, text))
            pending = None
    if pending is not None:
        question = pending
    return question, history, context
