"""The assistant's LangGraph: ``build_graph(tools=None, checkpointer=None)`` → a compiled graph.

Shape (LangGraph's react-agent template): ``plan`` → (``tools_condition``) → ``tools`` → ``plan`` … →
``answer``. Use it through :class:`biomedgpt.agent.assistant.Assistant`, or directly::

    graph = build_graph()
    graph.invoke({"messages": [("user", "Describe aspirin")]},
                 {"configurable": {"thread_id": "s1"}}, context=Context(services=Services(settings)))

The tools and the nodes take everything configurable from ``Context.services`` (its clients, its store and its
``settings``), never from the process-wide settings, so two graphs run with different services in one process
stay apart.

Why each node (who picks the tools is ``Context.tool_choice``, agent/modes.py):
- ``plan``: in ``router`` mode (the default, and always without a chat model) the router's plan becomes an
  ``AIMessage`` with ``tool_calls``, once per question; in ``model`` mode the chat model, offered the tools the
  question needs, says what to do next. Both paths share the rest.
- ``tools`` is a ``ToolNode`` that turns a failing tool into an error ``ToolMessage`` (the plan can
  react to it, the answer reports it), answers malformed calls with an error instead of running them, files
  the records from each tool's artifact into the typed state, remembers the entity for follow-ups, and
  forwards the tools' progress messages (``tools.progress.report``) to LangGraph's ``custom`` stream.
- ``answer`` writes the cited answer: composed from the records without a chat model; in ``router`` mode the
  chat model writes only its opening sentence and the composed facts follow verbatim; its last reply in ``model``
  mode; either way checked
  (agent/grounding.py). At the step limit it ends gracefully with what was found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from biomedgpt.agent.answer import citations_for, compose_answer, sources_from_state
from biomedgpt.agent.backends import call_chat_model, reply_info
from biomedgpt.agent.context import Context
from biomedgpt.agent.grounding import Evidence, evidence_from_state, evidence_from_text
from biomedgpt.agent.modes import (
    MODEL,
    NO_TOOL_INTENTS,
    finish_answer,
    malformed_message,
    question_names,
    reply_summary,
    screen_reply,
    tools_for_question,
    write_lead,
)
from biomedgpt.agent.state import InputState, State
from biomedgpt.agent.steps import (
    describe_tool_error,
    file_results,
    new_question_update,
    router_plan,
)
from biomedgpt.tools.langchain_tools import record_type_of
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
    """Run the router (the planner) and express its plan as an ``AIMessage`` with tool calls (agent/steps.py)."""
    update, planned = router_plan(question, state, settings=ctx.settings, offline=ctx.offline)
    update["messages"] = [AIMessage(content="", tool_calls=planned.tool_calls(),
                                    additional_kwargs={"intent": planned.intent, "attributes": planned.attributes})]
    return update


def _model_step(state: State, ctx: Context, new_question: bool, tools: Sequence[BaseTool]) -> dict:
    """One step of ``model`` mode: the chat model, offered the tools relevant to the question, replies.

    On a new question the router's understanding says what is asked (intent, entities); off-domain, help and
    unclear questions get no tool, and a question that names an entity must start with a tool call where the API
    supports ``tool_choice`` (agent/modes.py).
    """
    from biomedgpt.agent.planner import PlanContext
    from biomedgpt.agent.planner import plan as route

    messages = state["messages"]
    update: dict[str, Any] = {}
    required = False
    if new_question:
        planned = route(_text(messages[-1]), PlanContext.from_state(state, offline=ctx.offline, settings=ctx.settings))
        offered = [] if planned.problem else tools_for_question(
            planned.intent, [e.kind for e in planned.entities], planned.tool_names, tools)
        update.update({"intent": planned.intent, "attributes": planned.attributes, "offline": planned.offline,
                       "problem": planned.problem, "offered": [t.name for t in offered]})
        intent, problem = planned.intent, planned.problem
        required = bool(offered) and any(not e.from_context and e.kind in ("molecule", "protein", "cid", "inchikey",
                                                                           "pmid") for e in planned.entities)
    else:
        intent, problem = state.get("intent"), state.get("problem")
        offered = [t for t in tools if t.name in (state.get("offered") or [])]
    allowed = intent not in NO_TOOL_INTENTS and not problem
    prompt: list[AnyMessage] = [SystemMessage(ctx.system_prompt)]
    entity = state.get("entity")
    if entity:
        prompt.append(SystemMessage(f"The conversation is currently about this {entity['kind']}: "
                                    f"{entity.get('name') or entity['value']} ({entity['value']})."))
    reply = call_chat_model(ctx.chat_model, prompt + list(messages), backend=ctx.backend, limits=ctx.limits,
                            tools=offered if allowed else None, tool_choice="required" if required else None)
    update["messages"] = [screen_reply(reply, [t.name for t in offered], allowed)]
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
            update.update(new_question_update())
        if steps > ctx.max_steps:
            update["limited"] = True
            return update
        if ctx.chat_model is None or ctx.tool_choice != MODEL:
            if new_question:  # the router plans once per question (a chat model, if any, only writes the answer)
                update.update(_offline_plan(_text(messages[-1]), state, ctx))
            return update
        update.update(_model_step(state, ctx, new_question, tools))
        return update

    def run_tools(state: State, config: RunnableConfig, runtime: Runtime[Context]) -> dict:
        from biomedgpt.tools.progress import listen

        writer = runtime.stream_writer

        def forward(message: str) -> None:
            writer({"progress": str(message)})

        last = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        malformed = last.additional_kwargs.get("malformed_calls") or {}
        new_messages = [ToolMessage(content=malformed_message(info["name"], info["args"], info["error"],
                                                              state.get("offered") or []),
                                    tool_call_id=call_id, name=info["name"], status="error")
                        for call_id, info in malformed.items()]  # answered, never run
        runnable = [c for c in last.tool_calls if c["id"] not in malformed]
        if runnable:
            with listen(forward):
                result = tool_node.invoke({**state, "messages": [*state["messages"][:-1],
                                                                 last.model_copy(update={"tool_calls": runnable})]},
                                          config)
            new_messages += result["messages"] if isinstance(result, dict) else result
        ctx = runtime.context
        results = [(message.name or "", message.artifact) for message in new_messages
                   if isinstance(message, ToolMessage) and message.status != "error"]
        update = file_results(results, state, record_types,
                              model_planned=bool(ctx and ctx.chat_model is not None and ctx.tool_choice == MODEL))
        return {"messages": new_messages, **update}

    def answer(state: State, runtime: Runtime[Context]) -> dict:
        ctx = runtime.context or Context()
        messages = state["messages"]
        turn = turn_messages(messages)
        question = _text(turn[0]) if turn and isinstance(turn[0], HumanMessage) else ""
        sources = sources_from_state(state)
        earlier = {k: v for k, v in (state.get("known_sources") or {}).items() if k not in sources}
        evidence = evidence_from_state(state)
        last = messages[-1]
        limited = bool(state.get("limited"))
        failed = failed_calls(turn)
        replies = [m for m in turn if isinstance(m, AIMessage) and reply_info(m)]
        reply, draft, message_id, note = None, None, None, ""
        if ctx.chat_model is not None and not limited:
            if ctx.tool_choice == MODEL:
                if isinstance(last, AIMessage) and not last.tool_calls and _text(last).strip():
                    reply, message_id = last, last.id
                elif isinstance(last, AIMessage) and not last.tool_calls:
                    note = f"_The chat model ({ctx.backend}) wrote no answer; this one is composed from the records._"
            else:  # router: the records are in; the chat model writes the lead, the composed answer follows it
                draft = compose_answer(question, state, failed, settings=ctx.settings)
                reply = write_lead(ctx.chat_model, question, state, backend=ctx.backend, limits=ctx.limits)
                replies.append(reply)
                if not _text(reply).strip():
                    reply = None
                    note = f"_The chat model ({ctx.backend}) wrote no answer; this one is composed from the records._"
        extras: dict[str, Any] = {"answer_source": "composed", "ungrounded": [],
                                  "truncated": any(reply_info(m).get("truncated") for m in replies)}
        if reply is not None:
            known = {label: Evidence.from_dict(raw) for label, raw in (state.get("known_facts") or {}).items()}
            known.update(evidence)
            for label, derived in evidence_from_text(draft or "").items():  # values the router derived (rankings)
                known[label] = known.get(label, Evidence()).merge(derived)
            text, ungrounded = finish_answer(
                _text(reply), sources=sources, earlier=earlier, evidence=known, names=question_names(state),
                model_answers=state.get("model_answers") or [], info=reply_info(reply), failed=failed,
                limits=ctx.limits, draft=draft)
            sources = {**earlier, **sources}
            extras.update(answer_source="llm", ungrounded=ungrounded, llm=reply_summary(reply))
        else:
            text = compose_answer(question, state, failed, limited_after=ctx.max_steps if limited else None,
                                  settings=ctx.settings)
            if note:
                text = f"{note}\n\n{text}"
        final = AIMessage(content=text, name=ANSWER_NAME, id=message_id or f"answer-{uuid.uuid4().hex}",
                          additional_kwargs={"citations": citations_for(text, sources), **extras})
        facts = {label: found.to_dict() for label, found in evidence.items()}
        return {"messages": [final], "known_sources": sources, "known_facts": facts}

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
