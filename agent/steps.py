"""The assistant's node logic without LangGraph: ``router_plan``, ``file_results``, ``composed_answer``,
``describe_tool_error``.

Use: the graph's nodes (``agent/graph.py``) wrap these in messages; the session-less fast path
(``agent/fast_path.py``) calls them directly. Why one module for both: a question the router plans must get the
same answer, citations, tool calls and artifacts whichever way it runs, and sharing the code that decides them is
what keeps the two paths equal (``tests/agent/test_fast_path.py`` checks it on real questions). Nothing here
imports LangChain or LangGraph, so the fast path never loads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from biomedgpt.agent.answer import (
    citations_for,
    compose_answer,
    entity_from_artifacts,
    file_records,
    sources_from_state,
)
from biomedgpt.agent.planner import Plan, PlanContext, plan
from biomedgpt.agent.state import empty_artifacts
from biomedgpt.core.errors import BiomedGPTError
from biomedgpt.core.settings import Settings
from biomedgpt.tools.errors import OfflineMiss
from biomedgpt.tools.langchain_tools import records_of


def describe_tool_error(error: Exception) -> str:
    """The content of the error ``ToolMessage`` for a failed tool: what failed and why, in one line (the graph's
    ``ToolNode`` and the fast path word failures alike)."""
    if isinstance(error, OfflineMiss):
        return f"Error: needs the network (offline mode): {error}"
    if isinstance(error, BiomedGPTError):
        return f"Error: {error}"
    return f"Error: {type(error).__name__}: {error}"


def new_question_update() -> dict[str, Any]:
    """What the plan node resets when a new question arrives (the artifacts and the per-question fields)."""
    return {**empty_artifacts(), "limited": False, "intent": None, "attributes": None, "searched": None,
            "problem": None}


def router_plan(question: str, state: Mapping[str, Any], *, settings: Settings, offline: bool) -> tuple[dict, Plan]:
    """The router's plan of ``question`` and the state update it makes (intent, attributes, entities).

    The planner sees only the question and the remembered entities (``PlanContext.from_state``), never passages
    or tool output, so injected text in retrieved data cannot add a tool call.
    """
    planned = plan(question, PlanContext.from_state(state, offline=offline, settings=settings))
    update: dict[str, Any] = {
        "intent": planned.intent,
        "attributes": planned.attributes,
        "offline": planned.offline,
        "problem": planned.problem,
    }
    subjects = [e.model_dump(exclude={"from_context"}) for e in planned.entities
                if e.kind in ("molecule", "protein", "cid", "inchikey")]
    if subjects:
        update["entity"] = subjects[0]
        if not planned.follow_up:  # a follow-up refers to remembered entities: their order stays as named
            update["entities"] = subjects
    return update, planned


def file_results(results: Sequence[tuple[str, Any]], state: Mapping[str, Any], record_types: Mapping[str, Any],
                 *, model_planned: bool) -> dict[str, Any]:
    """The state update from the successful tool results of one step: ``results`` is (tool name, artifact) in the
    order of the calls; ``model_planned`` says a chat model (not the router) picked the tools this turn."""
    update: dict[str, Any] = {}
    records = []
    for name, artifact in results:
        # filed by the tool that returned them, never by the keys they happen to have
        records += records_of(name, artifact, record_types.get(name))
        if isinstance(artifact, dict) and "searched" in artifact:
            update["searched"] = int(artifact["searched"])
    found = file_records(records)
    update.update({kind: records for kind, records in found.items() if records})
    entity = entity_from_artifacts(found)
    previous = state.get("entity")
    if entity and (model_planned or not previous):
        # A chat model planned this turn: remember what its tools found. (The router already named the
        # entity when it planned, with or without a chat model.)
        update["entity"] = entity
        update["entities"] = [entity]
    elif entity and previous and previous.get("kind") == entity["kind"] and not previous.get("label") and (
            str(previous.get("value", "")).lower() in {str(entity.get("value", "")).lower(),
                                                       str(entity.get("name") or "").lower()}):
        update["entity"] = {**previous, "name": entity.get("name"), "label": entity.get("label")}
    return update


def composed_answer(question: str, state: Mapping[str, Any], failed: list[dict], *, limited_after: int | None,
                    settings: Settings) -> tuple[str, list[dict]]:
    """The answer composed from the records of the turn, and its citations."""
    text = compose_answer(question, state, failed, limited_after=limited_after, settings=settings)
    return text, citations_for(text, sources_from_state(state))
