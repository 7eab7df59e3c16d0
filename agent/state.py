"""The graph state of the assistant: ``from biomedgpt.agent.state import State, InputState``.

Why typed artifacts next to the messages: the answer node cites records, not free text, and a
follow-up ("what is its molecular weight?") needs the last entity the conversation was about. The
state is checkpointed per session, so everything in it is plain data (dicts, lists, strings and
LangChain messages) that the strict msgpack serializer accepts.

Artifacts are per turn: the plan node resets them when a new question arrives (an update of
``None`` clears a list), while ``entity`` survives across turns.

Why ``State`` and ``InputState`` are built on first access (PEP 562): their ``messages`` field needs LangChain's
message types and LangGraph's ``add_messages``, ~0.5 s of imports, while the reducers and ``ARTIFACT_KINDS`` are
needed by code that never runs the graph (the composed answer, the session-less fast path in
``agent/fast_path.py``, exports). ``REDUCERS`` lists each field's reducer for that path.
"""

from __future__ import annotations

from typing import Annotated, Any

from typing_extensions import TypedDict

#: How many recent entities the state keeps for "them" / "which of them" follow-ups.
MAX_RECENT_ENTITIES = 5

#: The artifact lists in the state, in the order the answer presents them.
ARTIFACT_KINDS: tuple[str, ...] = ("compounds", "properties", "proteins", "model_answers", "similar", "passages")


def merge_records(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """Reducer for artifact lists: ``None`` clears, a list is appended without duplicates."""
    if right is None:
        return []
    merged = list(left or [])
    for record in right:
        if record not in merged:
            merged.append(record)
    return merged


def recent_entities(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """Reducer for the conversation's recent entities: newest last, unique by (kind, value), at most 5."""
    merged = [e for e in (left or []) if all((e.get("kind"), e.get("value")) != (r.get("kind"), r.get("value"))
                                             for r in (right or []))]
    merged.extend(right or [])
    return merged[-MAX_RECENT_ENTITIES:]


def merge_sources(left: dict | None, right: dict | None) -> dict:
    """Reducer for the session's citable sources (label → citation); newer entries win."""
    return {**(left or {}), **(right or {})}


def replace_value(left: Any, right: Any) -> Any:
    """Reducer that keeps the newest value (explicit, so a partial update never drops a field)."""
    return right


def _typed_states() -> tuple[type, type]:
    """Define ``InputState`` and ``State`` (LangGraph reads their annotations, resolved in this module)."""
    # deferred: LangChain's messages and LangGraph cost ~0.5 s to import; only the graph needs them
    from langchain_core.messages import AnyMessage
    from langgraph.graph.message import add_messages

    globals().update(AnyMessage=AnyMessage, add_messages=add_messages)

    class InputState(TypedDict, total=False):
        """What a caller sends: the new message(s)."""

        messages: Annotated[list[AnyMessage], add_messages]

    class State(InputState, total=False):
        """The full state of one session (thread)."""

        compounds: Annotated[list[dict], merge_records]
        proteins: Annotated[list[dict], merge_records]
        passages: Annotated[list[dict], merge_records]
        model_answers: Annotated[list[dict], merge_records]
        properties: Annotated[list[dict], merge_records]
        similar: Annotated[list[dict], merge_records]
        #: The entity the conversation is about: {"kind": "molecule"|"protein", "value": ..., "label": ...}.
        entity: Annotated[dict | None, replace_value]
        #: Recent entities (newest last), for follow-ups about "them".
        entities: Annotated[list[dict], recent_entities]
        #: Every source cited so far in the session (label → {label, source, url, title}), so that an
        #: LLM's answer that cites evidence from an earlier turn is still checked against real records.
        known_sources: Annotated[dict, merge_sources]
        #: What the records of the session hold, by citation label ({"numbers": [...], "names": [...]}), so that a
        #: chat model's answer citing a record of an earlier turn is checked against its values (agent/grounding).
        known_facts: Annotated[dict, merge_sources]
        #: In ``model`` mode: the tools offered to the chat model for the current question.
        offered: Annotated[list[str] | None, replace_value]
        #: The intent of the current question when the router classified it.
        intent: Annotated[str | None, replace_value]
        #: The attributes the current question asks for (``agent/understanding``), e.g. ["molecular_weight"].
        attributes: Annotated[list[str] | None, replace_value]
        #: Whether the current question was planned offline (the answer says what needs the network).
        offline: Annotated[bool, replace_value]
        #: For a question whose structure could not be read: the one-sentence reason (nothing was looked up).
        problem: Annotated[str | None, replace_value]
        #: How many chunks the literature store held when it was searched this turn.
        searched: Annotated[int | None, replace_value]
        #: Plan steps taken for the current question (reset on every new question).
        steps: Annotated[int, replace_value]
        #: True when the current question ended at the step limit.
        limited: Annotated[bool, replace_value]

    for cls in (InputState, State):
        cls.__qualname__ = cls.__name__
    return InputState, State


#: Each field's reducer (``None``: the newest value replaces the old), as in ``State``'s annotations.
REDUCERS: dict[str, Any] = {
    **{kind: merge_records for kind in ARTIFACT_KINDS},
    "entity": replace_value, "entities": recent_entities, "known_sources": merge_sources, "known_facts": merge_sources,
    "offered": replace_value, "intent": replace_value, "attributes": replace_value, "offline": replace_value,
    "problem": replace_value, "searched": replace_value, "steps": replace_value, "limited": replace_value,
}


def apply_update(state: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``state`` after ``update`` through each field's reducer, as LangGraph applies a node's update (without
    ``messages``, which only the graph keeps)."""
    for key, value in update.items():
        reducer = REDUCERS.get(key, replace_value)
        state[key] = reducer(state.get(key), value)
    return state


def __getattr__(name: str) -> Any:
    if name in ("InputState", "State"):
        input_state, state = _typed_states()
        globals().update(InputState=input_state, State=state)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def empty_artifacts() -> dict[str, list[dict]]:
    """The update that clears every artifact list at the start of a question."""
    return {kind: None for kind in ARTIFACT_KINDS}  # type: ignore[misc]
