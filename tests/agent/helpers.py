"""Test helpers for the agent: a fake chat model with ``bind_tools`` and small real tools.

Why a fake chat model: the graph's behaviour (tool calls, recovery, limits, citation checks) must be
tested without a network LLM; ``GenericFakeChatModel`` replays scripted ``AIMessage``s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from biomedgpt.tools.errors import ServiceError
from biomedgpt.tools.records import MoleculeProperties
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """Replays scripted messages; ``bind_tools`` records the tool names it was offered."""

    bound: list[str] = []
    #: The ``tool_choice`` of each ``bind_tools`` call (None: the model may answer without a tool).
    tool_choices: list = []
    #: The messages of each call, in order.
    seen: list = []

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        # The parent streams text only; a real provider streams tool calls as tool_call_chunks (malformed ones
        # with their raw arguments, which become invalid_tool_calls) and the finish reason in response_metadata.
        self.seen = [*self.seen, list(messages)]
        message = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        chunks = [{"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                  for i, c in enumerate(message.tool_calls)]
        chunks += [{"name": c.get("name"), "args": c.get("args"), "id": c.get("id"), "index": len(chunks) + i}
                   for i, c in enumerate(message.invalid_tool_calls)]
        chunk = AIMessageChunk(content=message.content, id=message.id, tool_call_chunks=chunks,
                               response_metadata=dict(message.response_metadata), chunk_position="last")
        if run_manager and isinstance(message.content, str) and message.content:
            run_manager.on_llm_new_token(message.content, chunk=ChatGenerationChunk(message=chunk))
        yield ChatGenerationChunk(message=chunk)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any):
        self.bound = [getattr(t, "name", str(t)) for t in tools]
        self.tool_choices = [*self.tool_choices, kwargs.get("tool_choice")]
        return self


def fake_llm(messages: Iterable[AIMessage | str]) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=iter(list(messages)))


def call(name: str, call_id: str, **args: Any) -> dict:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


@tool(response_format="content_and_artifact")
def rdkit_properties(smiles: str) -> tuple[str, dict]:
    """Compute molecular properties of a SMILES locally with RDKit."""
    from biomedgpt.tools.properties import molecule_properties

    props = molecule_properties(smiles)
    return f"{props.formula}, average mass {props.average_mass:.2f} [RDKit]", props.model_dump()


@tool(response_format="content_and_artifact")
def broken_lookup(query: str) -> tuple[str, dict]:
    """A look-up whose service is down (raises a ServiceError)."""
    raise ServiceError("PubChem", f"service unavailable for {query!r} (HTTP 503)", status=503, retried=2)


@tool(response_format="content_and_artifact")
def noisy_tool(query: str) -> tuple[str, dict]:
    """Reports progress through biomedgpt.tools.progress, then returns a properties record."""
    from biomedgpt.tools.progress import report
    from biomedgpt.tools.properties import molecule_properties

    report("PubChem busy, retrying in 2 s")
    props = molecule_properties("CCO")
    return "ethanol properties", props.model_dump()


# Each tool declares the record type of its artifact; the graph files results by it.
rdkit_properties.metadata = {"record": MoleculeProperties}
noisy_tool.metadata = {"record": MoleculeProperties}
TEST_TOOLS = [rdkit_properties, broken_lookup, noisy_tool]
