"""Chat-model back ends chosen by one setting, ``BIOMEDGPT_LLM``: ``make_chat_model(spec)``.

Specs:
- ``offline`` (default): no chat model; the offline planner picks the tools and the answer node
  writes an extractive answer (``make_chat_model`` returns ``None``).
- ``openai:MODEL``: langchain-openai; ``OPENAI_BASE_URL`` points it at any OpenAI-compatible server
  (vLLM serving BioMedGPT-LM-7B, for instance); ``OPENAI_API_KEY`` comes from the environment and is
  never logged or echoed.
- ``ollama:MODEL``: langchain-ollama; the server is ``OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
- ``hf:PATH``: a local transformers chat model (:class:`HFChatModel`); tool calls that it writes as
  JSON, in ``<tool_call>`` tags or in fenced JSON are parsed into ``AIMessage.tool_calls``.
- ``biomedgpt:PATH``: the multimodal BioMedGPT model's language model as a chat model.

No silent fallback: a back end that cannot be built or that fails raises :class:`BackendError`
naming it and the reason; nothing quietly switches to another service.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, PrivateAttr

from biomedgpt.core.errors import BiomedGPTError, ConfigError
from biomedgpt.core.settings import Settings, get_settings

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"


class BackendError(BiomedGPTError):
    """The configured chat back end failed; the message names it and says why (no silent fallback)."""


def parse_spec(spec: str) -> tuple[str, str]:
    """``"openai:gpt-4o"`` → ``("openai", "gpt-4o")``; ``"offline"`` → ``("offline", "")``."""
    spec = (spec or "offline").strip()
    kind, _, target = spec.partition(":")
    kind = kind.lower()
    if kind == "offline" and not target:
        return "offline", ""
    if kind not in ("openai", "ollama", "hf", "biomedgpt"):
        raise ConfigError(f"BIOMEDGPT_LLM={spec!r} is not a known back end; use offline, openai:MODEL, "
                          "ollama:MODEL, hf:PATH or biomedgpt:PATH")
    if not target:
        raise ConfigError(f"BIOMEDGPT_LLM={spec!r} names no model; write {kind}:MODEL")
    return kind, target


def make_chat_model(spec: str | None = None, settings: Settings | None = None) -> BaseChatModel | None:
    """The chat model for ``spec`` (default: ``settings.llm``), or ``None`` for ``offline``."""
    settings = settings or get_settings()
    spec = spec or settings.llm
    kind, target = parse_spec(spec)
    if kind == "offline":
        return None
    try:
        if kind == "openai":
            return _openai(target, settings)
        if kind == "ollama":
            return _ollama(target, settings)
        if kind == "hf":
            return HFChatModel.from_path(target)
        return _biomedgpt(target, settings)
    except BiomedGPTError as error:
        if isinstance(error, BackendError):
            raise
        raise BackendError(f"chat back end {spec!r} could not start: {error}") from error
    except Exception as error:  # noqa: BLE001 - reported with the back end's name
        raise BackendError(f"chat back end {spec!r} could not start: {type(error).__name__}: {error}") from error


def _openai(model: str, settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if not base_url:
            raise BackendError(f"chat back end 'openai:{model}' needs OPENAI_API_KEY in the environment "
                               "(or OPENAI_BASE_URL for a local OpenAI-compatible server)")
        key = "EMPTY"  # local servers such as vLLM accept any key
    return ChatOpenAI(model=model, base_url=base_url, api_key=key, max_retries=settings.http.max_retries,
                      timeout=settings.http.read_timeout, temperature=0)


def _ollama(model: str, settings: Settings) -> BaseChatModel:
    from langchain_ollama import ChatOllama

    host = os.environ.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    if "://" not in host:
        host = f"http://{host}"
    return ChatOllama(model=model, base_url=host, temperature=0,
                      client_kwargs={"timeout": settings.http.read_timeout})


def _biomedgpt(path: str, settings: Settings) -> BaseChatModel:
    """The BioMedGPT multimodal model (a preset name or a saved folder) as a chat model."""
    from biomedgpt.model import load_model

    device = settings.device if settings.device != "auto" else "cpu"
    return BiomedGPTChatModel.from_model(load_model(path, device=device), name=f"biomedgpt:{path}")


# ----------------------------------------------------------------------------- tool-call parsing

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCED = re.compile(r"```(?:json|tool_call|tool)?\s*(.*?)```", re.S)


def _call_from_json(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name") or value.get("tool") or value.get("tool_name")
    args = value.get("arguments", value.get("parameters", value.get("args", {})))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not isinstance(args, dict):
        return None
    return {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:16]}", "type": "tool_call"}


def _calls_from_text(blob: str) -> list[dict]:
    try:
        value = json.loads(blob)
    except json.JSONDecodeError:
        return []
    items = value if isinstance(value, list) else [value]
    calls = [_call_from_json(item) for item in items]
    return [c for c in calls if c is not None]


def parse_tool_calls(text: str, allowed: Sequence[str] | None = None) -> tuple[str, list[dict]]:
    """Tool calls written by a local model → (remaining text, LangChain tool calls).

    Recognises ``<tool_call>{...}</tool_call>`` tags (Hermes/Qwen style), fenced JSON blocks and a
    reply that is a JSON object or list as a whole; ``{"name", "arguments"|"parameters"|"args"}`` and
    OpenAI's ``{"function": {...}}`` shapes. Calls to tools not in ``allowed`` are dropped.
    """
    calls: list[dict] = []
    remaining = text
    for pattern in (_TAGGED, _FENCED):
        found = [(m.group(0), _calls_from_text(m.group(1))) for m in pattern.finditer(text)]
        found = [(whole, c) for whole, c in found if c]
        if found:
            for whole, parsed in found:
                calls.extend(parsed)
                remaining = remaining.replace(whole, "")
            break
    if not calls:
        calls = _calls_from_text(text.strip())
        if calls:
            remaining = ""
    if allowed is not None:
        calls = [c for c in calls if c["name"] in set(allowed)]
    return remaining.strip(), calls


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


class HFChatModel(BaseChatModel):
    """A local transformers causal LM as a LangChain chat model with ``bind_tools``.

    Why parse text: small local models have no native tool-call channel; the chat template is given
    the tools' JSON schemas and the reply is parsed by :func:`parse_tool_calls`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name_or_path: str
    max_new_tokens: int = 256
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @classmethod
    def from_path(cls, path: str, **kwargs: Any) -> HFChatModel:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise BackendError(f"chat back end 'hf:{path}': no such model folder (models are never downloaded)")
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        return cls.from_objects(model, tokenizer, name=f"hf:{path}", **kwargs)

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
        import torch

        chat = to_chat_dicts(messages)
        encoded = self._tokenizer.apply_chat_template(chat, tools=tools or None, add_generation_prompt=True,
                                                      return_tensors="pt", return_dict=True)
        device = next(self._model.parameters()).device
        encoded = {k: v.to(device) for k, v in encoded.items()}
        with torch.inference_mode():
            output = self._model.generate(**encoded, max_new_tokens=self.max_new_tokens, do_sample=False,
                                          pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id)
        text = self._tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        for marker in stop or []:
            text = text.split(marker)[0]
        allowed = [t["function"]["name"] for t in tools or []]
        content, calls = parse_tool_calls(text, allowed if tools else [])
        message = AIMessage(content=content, tool_calls=calls)
        return ChatResult(generations=[ChatGeneration(message=message)])


class BiomedGPTChatModel(BaseChatModel):
    """The multimodal BioMedGPT as a chat model, in its released ``### Human: … ### Assistant:`` format.

    Why it needs care: the model reads structures, not just text. SMILES and protein sequences in the
    latest question are recognised (the planner's recogniser, RDKit-validated) and given to the model
    as molecules/proteins; tool results go into the prompt's context block, earlier turns into its
    history. Bound tools are described in the context and the reply is parsed with
    :func:`parse_tool_calls`, as for any local model without a native tool channel.
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
        allowed = [t["function"]["name"] for t in tools or []]
        content, calls = parse_tool_calls(text, allowed)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content, tool_calls=calls))])


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
