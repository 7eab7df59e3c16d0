"""The assistant's LangGraph: ``build_graph(tools=None, checkpointer=None)`` → a compiled graph.

Shape (LangGraph's react-agent template): ``plan`` → (``tools_condition``) → ``tools`` → ``plan`` … →
``answer``. Use it through :class:`biomedgpt.agent.assistant.Assistant`, or directly::

    graph = build_graph()
    graph.invoke({"messages": [("user", "Describe aspirin")]},
                 {"configurable": {"thread_id": "s1"}}, context=Context())

Why each node:
- ``plan`` asks the configured chat model (tools bound) what to do next, or — offline — turns the
  offline planner's plan into an ``AIMessage`` with ``tool_calls``, so both paths share the rest.
- ``tools`` is a ``ToolNode`` that turns a failing tool into an error ``ToolMessage`` (the plan can
  react to it, the answer reports it), files the records from each tool's artifact into the typed
  state, remembers the entity for follow-ups, and forwards the tools' progress messages
  (``tools.progress.report``) to LangGraph's ``custom`` stream.
- ``answer`` writes the cited answer; at the step limit it ends gracefully with what was found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from biomedgpt.agent.answer import (
    check_citations,
    citations_for,
    compose_answer,
    entity_from_artifacts,
    file_records,
    sources_from_state,
)
from biomedgpt.agent.backends import BackendError
from biomedgpt.agent.context import Context
from biomedgpt.agent.state import InputState, State, empty_artifacts
from biomedgpt.core.errors import BiomedGPTError
from biomedgpt.tools.langchain_tools import record_type_of, records_of
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.runtime import Runtime

#: ``name`` of the AIMessage that holds a final answer (history and results look for it).
ANSWER_NAME = "biomedgpt-answer"


def describe_tool_error(error: Exception) -> str:
    """The content of the error ``ToolMessage`` for a failed tool: what failed and why, in one line."""
    from biomedgpt.tools.errors import OfflineMiss

    if isinstance(error, OfflineMiss):
        return f"Error: needs the network (offline mode): {error}"
    if isinstance(error, BiomedGPTError):
        return f"Error: {error}"
    return f"Error: {type(error).__name__}: {error}"


def turn_messages(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The messages of the current question: from the last ``HumanMessage`` on."""
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], HumanMessage):
            return list(messages[index:])
    return list(messages)


def failed_calls(messages: Sequence[AnyMessage]) -> list[dict]:
    """The failed tool calls of a turn: [{name, args, error}]."""
    calls = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    failed = []
    for m in messages:
        if isinstance(m, ToolMessage) and m.status == "error":
            call = calls.get(m.tool_call_id, {})
            failed.append({"name": m.name or call.get("name", "?"), "args": call.get("args", {}),
                           "error": str(m.content)})
    return failed


def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)


def _offline_plan(question: str, state: State, ctx: Context) -> dict:
    """Run the offline planner and express its plan as an ``AIMessage`` with tool calls.

    The planner sees only the question and the remembered entities (``PlanContext.from_state``),
    never passages or tool output, so injected text in retrieved data cannot add a tool call.
    """
    from biomedgpt.agent.planner import PlanContext, plan

    planned = plan(question, PlanContext.from_state(state, offline=ctx.offline))
    update: dict[str, Any] = {
        "messages": [AIMessage(content="", tool_calls=planned.tool_calls(),
                               additional_kwargs={"intent": planned.intent, "attributes": planned.attributes})],
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
    return update


def build_graph(tools: Sequence[BaseTool] | None = None, checkpointer: Any = None, *, name: str = "biomedgpt"):
    """Compile the assistant graph over ``tools`` (default: every biomedgpt tool)."""
    if tools is None:
        from biomedgpt.tools.langchain_tools import all_tools

        tools = all_tools()
    tools = list(tools)
    tool_node = ToolNode(tools, handle_tool_errors=describe_tool_error)
    record_types = {tool.name: record_type_of(tool) for tool in tools}  # what each tool's artifact holds

    def plan(state: State, runtime: Runtime[Context]) -> dict:
        ctx = runtime.context or Context()
        messages = state["messages"]
        new_question = isinstance(messages[-1], HumanMessage)
        steps = 1 if new_question else int(state.get("steps") or 0) + 1
        update: dict[str, Any] = {"steps": steps}
        if new_question:
            update.update(empty_artifacts())
            update.update({"limited": False, "intent": None, "attributes": None, "searched": None, "problem": None})
        if steps > ctx.max_steps:
            update["limited"] = True
            return update
        if ctx.chat_model is None:
            if new_question:  # the offline planner plans once per question
                update.update(_offline_plan(_text(messages[-1]), state, ctx))
            return update
        bound = ctx.chat_model.bind_tools(tools)
        prompt: list[AnyMessage] = [SystemMessage(ctx.system_prompt)]
        entity = state.get("entity")
        if entity:
            prompt.append(SystemMessage(f"The conversation is currently about this {entity['kind']}: "
                                        f"{entity.get('name') or entity['value']} ({entity['value']})."))
        try:
            reply = bound.invoke(prompt + list(messages))
        except BiomedGPTError:
            raise
        except Exception as error:  # noqa: BLE001 - any failure of the back end is reported as such
            raise BackendError(f"chat back end {ctx.backend!r} failed: {type(error).__name__}: {error}") from error
        update["messages"] = [reply]
        return update

    def run_tools(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict:
        from biomedgpt.tools.progress import listen

        writer = runtime.stream_writer

        def forward(message: str) -> None:
            writer({"progress": str(message)})

        with listen(forward):
            result = tool_node.invoke(state, config)
        new_messages = result["messages"] if isinstance(result, dict) else result
        update: dict[str, Any] = {"messages": new_messages}
        records = []
        for message in new_messages:
            if isinstance(message, ToolMessage) and message.status != "error":
                # filed by the tool that returned them, never by the keys they happen to have
                records += records_of(message.name or "", message.artifact, record_types.get(message.name or ""))
                if isinstance(message.artifact, dict) and "searched" in message.artifact:
                    update["searched"] = int(message.artifact["searched"])
        found = file_records(records)
        update.update({kind: records for kind, records in found.items() if records})
        entity = entity_from_artifacts(found)
        previous = state.get("entity")
        if entity and ((runtime.context and runtime.context.chat_model is not None) or not previous):
            # A chat model planned this turn: remember what its tools found. (The offline planner
            # already named the entity when it planned.)
            update["entity"] = entity
            update["entities"] = [entity]
        elif entity and previous and previous.get("kind") == entity["kind"] and not previous.get("label") and (
                str(previous.get("value", "")).lower() in {str(entity.get("value", "")).lower(),
                                                           str(entity.get("name") or "").lower()}):
            update["entity"] = {**previous, "name": entity.get("name"), "label": entity.get("label")}
        return update

    def answer(state: State, runtime: Runtime[Context]) -> dict:
        ctx = runtime.context or Context()
        messages = state["messages"]
        turn = turn_messages(messages)
        question = _text(turn[0]) if turn and isinstance(turn[0], HumanMessage) else ""
        sources = sources_from_state(state)
        last = messages[-1]
        limited = bool(state.get("limited"))
        if (ctx.chat_model is not None and isinstance(last, AIMessage) and not last.tool_calls
                and not limited and _text(last).strip()):
            earlier = {k: v for k, v in (state.get("known_sources") or {}).items() if k not in sources}
            text = check_citations(_text(last), sources, state.get("model_answers") or [], earlier=earlier)
            sources = {**earlier, **sources}
            message_id = last.id
        else:
            text = compose_answer(question, state, failed_calls(turn),
                                  limited_after=ctx.max_steps if limited else None)
            message_id = None
        final = AIMessage(content=text, name=ANSWER_NAME, id=message_id or f"answer-{uuid.uuid4().hex}",
                          additional_kwargs={"citations": citations_for(text, sources)})
        return {"messages": [final], "known_sources": sources}

    def route(state: State) -> str:
        if state.get("limited"):
            return "answer"
        return "tools" if tools_condition(state) == "tools" else "answer"

    builder = StateGraph(State, input_schema=InputState, context_schema=Context)
    builder.add_node("plan", plan)
    builder.add_node("tools", run_tools)
    builder.add_node("answer", answer)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route, {"tools": "tools", "answer": "answer"})
    builder.add_edge("tools", "plan")
    builder.add_edge("answer", END)
    return builder.compile(checkpointer=checkpointer, name=name)


def recursion_limit(max_steps: int) -> int:
    """LangGraph's super-step limit for ``max_steps`` plan rounds (plan + tools each), plus the answer.

    The graph ends itself gracefully at ``max_steps``; this limit is only the backstop.
    """
    return 2 * max_steps + 4
