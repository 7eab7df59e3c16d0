"""Session-less questions the router answers, without LangGraph: ``Assistant.stream`` uses it by itself.

Use: nothing to call; ``Assistant().ask("What is the molecular weight of CCO?")`` and ``biomedgpt ask`` take this
path when it applies (:func:`prepare` says when) and the graph otherwise. ``BIOMEDGPT_FAST_PATH=0`` turns it off
(the graph answers every question), which is how the parity test compares the two.

Why: a question asked once, without a session and without a chat model, is one router plan, at most one round
of tool calls and a composed answer. Running it through LangGraph costs ~0.5 s of imports (LangGraph, LangChain,
LangSmith) in a new process and ~20 ms of CPU per question for the graph's machinery and checkpointing, 6-12
times the 1.5-3 ms an RDKit tool takes (issue 16, items 2 and 4). This path runs the same steps with the same
code (``agent/steps.py``: the router's plan, filing the tool results, the composed answer), validates the tools'
arguments with the same schemas LangChain would, turns tool failures into the same error text as the graph's
``ToolNode`` (``describe_tool_error``), streams the same events (``tool_call``, ``progress``, ``tool_result``,
``result``) and keeps nothing (no checkpointer). ``tests/agent/test_fast_path.py`` checks that the answer, the
citations, the tool calls, the artifacts and the ``--json`` output equal the graph's on a varied set of questions.

Anything it does not cover goes to the graph before a tool runs: a named session, a chat model, custom tools or
MCP servers, a step limit under 1, a planned call to an unknown tool or with arguments its schema rejects.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from biomedgpt.agent.assistant import AskResult, Event
from biomedgpt.agent.state import ARTIFACT_KINDS, apply_update
from biomedgpt.agent.steps import (
    composed_answer,
    describe_tool_error,
    file_results,
    new_question_update,
    router_plan,
)
from biomedgpt.core.chem import try_parse_smiles
from biomedgpt.tools.langchain_tools import SPECS, TOOL_RECORDS
from biomedgpt.tools.progress import listen
from pydantic import ValidationError

if TYPE_CHECKING:
    from biomedgpt.agent.assistant import Assistant

#: Set to 0 to send every question through the graph (the parity test's reference).
ENV_SWITCH = "BIOMEDGPT_FAST_PATH"


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def applies(assistant: Assistant, session: str | None) -> bool:
    """Whether ``assistant`` may answer without the graph: no session, no chat model, biomedgpt's own tools only.

    The chat model is judged without loading a back end: the ``none`` spec (``settings.llm``) or one already
    built as ``None``."""
    if session is not None or not enabled() or assistant._tools is not None or assistant.settings.mcp_servers:
        return False
    if assistant.max_steps < 1:
        return False
    if assistant._chat_ready:
        return assistant._chat_model is None
    spec = assistant._llm_arg if assistant._llm_arg is not None else assistant.settings.llm
    if not isinstance(spec, str):
        return False
    kind, _, target = spec.strip().partition(":")
    return kind.lower() in ("none", "offline", "") and not target  # agent/backends.parse_spec's "no chat model"


@dataclass
class _Outcome:
    """One tool call's result, as the graph's ToolMessage would hold it."""

    ok: bool
    content: str
    artifact: Any = None


def _needs_http(calls: list[dict]) -> bool:
    """Whether any call may send a request (then identical requests of the turn go out once, tools/http): all but
    ``molecule_properties`` of a SMILES, which RDKit answers alone (tools/biomedgpt_tool.resolve_molecule)."""
    for call in calls:
        smiles = call["args"].get("smiles") if call["name"] == "molecule_properties" else None
        text = smiles.strip() if isinstance(smiles, str) else ""
        if not text or text.isdigit() or try_parse_smiles(text) is None:
            return True
    return False


def _invoke(call: dict, services: Any) -> _Outcome:
    """Run one call as ``ToolNode`` runs a ``StructuredTool``: the schema's validated values (defaults filled in) as
    keyword arguments; a failure becomes the error text of ``describe_tool_error``."""
    func, schema, _ = SPECS[call["name"]]
    validated = schema.model_validate(call["args"])  # checked in prepare(): cannot fail here
    kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
    try:
        content, artifact = func(**kwargs, services=services)
    except ValidationError as error:  # raised inside a tool: ToolNode reports it as a ToolInvocationError
        # deferred: only this rare failure needs LangGraph, to word it exactly as the graph does
        from langgraph.prebuilt.tool_node import (
            ToolInvocationError,
            _filter_validation_errors,
        )

        wrapped = ToolInvocationError(call["name"], error, call["args"], _filter_validation_errors(error, None))
        return _Outcome(False, describe_tool_error(wrapped))
    except Exception as error:  # noqa: BLE001 - the graph's ToolNode turns every failure into a message too
        return _Outcome(False, describe_tool_error(error))
    return _Outcome(True, str(content), artifact)


@dataclass
class Prepared:
    """A question planned by the router whose calls all validate: :meth:`events` answers it."""

    assistant: Assistant
    question: str
    calls: list[dict]
    state: dict[str, Any] = field(default_factory=dict)

    def events(self) -> Iterator[Event]:
        for call in self.calls:
            yield Event("tool_call", {"name": call["name"], "args": call["args"]})
        outcomes: list[_Outcome] = []
        if self.calls:
            outcomes = yield from self._run_tools()
        state, assistant = self.state, self.assistant
        failed = []
        results = []
        for call, outcome in zip(self.calls, outcomes):
            yield Event("tool_result", {"name": call["name"], "ok": outcome.ok,
                                        "error": None if outcome.ok else outcome.content})
            if outcome.ok:
                results.append((call["name"], outcome.artifact))
            else:
                failed.append({"name": call["name"], "args": call["args"], "error": outcome.content})
        if self.calls:
            apply_update(state, file_results(results, state, TOOL_RECORDS, model_planned=False))
            apply_update(state, {"steps": 2})  # the plan node's second step: the router plans once per question
        limited = bool(self.calls) and assistant.max_steps < 2
        text, citations = composed_answer(self.question, state, failed,
                                          limited_after=assistant.max_steps if limited else None,
                                          settings=assistant.settings)
        calls = [{"name": c["name"], "args": c["args"], "ok": o.ok, "error": None if o.ok else o.content}
                 for c, o in zip(self.calls, outcomes)]
        yield Event("result", AskResult(
            answer=text, citations=citations, tool_calls=calls,
            artifacts={kind: list(state.get(kind) or []) for kind in ARTIFACT_KINDS}, session=None,
            attributes=list(state.get("attributes") or []), answer_source="composed", ungrounded=[],
            truncated=False, llm={}))

    def _run_tools(self) -> Iterator[Event]:
        """Run the calls, each in a thread with a copy of this context (the cancel scope, the request scope and
        the progress listener reach it, as in the graph's ToolNode); progress is streamed while they run."""
        messages: queue.SimpleQueue = queue.SimpleQueue()

        def forward(message: str) -> None:
            messages.put(("progress", None, str(message)))

        if _needs_http(self.calls):
            # deferred: the HTTP layer (requests-cache), only for look-ups
            from biomedgpt.tools.http import request_scope

            scope: Any = request_scope()
        else:
            scope = nullcontext()
        with scope, listen(forward):
            contexts = [copy_context() for _ in self.calls]
        services = self.assistant.services

        def work(index: int) -> None:
            try:
                messages.put(("done", index, _invoke(self.calls[index], services)))
            except BaseException as error:  # noqa: BLE001 - Cancelled and the like: raised in the caller
                messages.put(("raise", index, error))

        for index, context in enumerate(contexts):
            threading.Thread(target=context.run, args=(work, index), name="biomedgpt-tool", daemon=True).start()
        outcomes: dict[int, _Outcome] = {}
        while len(outcomes) < len(self.calls):
            kind, index, value = messages.get()
            if kind == "progress":
                yield Event("progress", value)
            elif kind == "raise":
                raise value
            else:
                outcomes[index] = value
        while not messages.empty():  # progress reported just before the last call finished
            kind, _, value = messages.get()
            if kind == "progress":
                yield Event("progress", value)
        return [outcomes[i] for i in range(len(self.calls))]


def prepare(assistant: Assistant, question: str) -> Prepared | None:
    """Plan ``question`` (already checked by the assistant) with the router; ``None`` when the graph must answer
    it (a call to an unknown tool or with arguments its schema rejects: the graph words those errors)."""
    settings = assistant.settings
    state: dict[str, Any] = {}
    apply_update(state, {"steps": 1, **new_question_update()})
    update, planned = router_plan(question, {}, settings=settings, offline=settings.offline)
    apply_update(state, update)
    calls = planned.tool_calls()
    for call in calls:
        spec = SPECS.get(call["name"])
        if spec is None:
            return None
        try:
            spec[1].model_validate(call["args"])
        except ValidationError:
            return None
    return Prepared(assistant, question, calls, state)
