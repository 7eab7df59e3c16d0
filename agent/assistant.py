"""The Python API: ``from biomedgpt import Assistant; Assistant().ask("Describe aspirin", session="s1")``.

``ask`` returns an :class:`AskResult` whose ``to_json()`` is exactly what ``biomedgpt ask --json``
prints: ``{answer, answer_source, ungrounded, truncated, citations: [{label, source, url, title}],
tool_calls: [{name, args, ok, error}], artifacts}``. ``answer_source`` is ``llm`` when a chat model wrote the
answer (its claims checked by ``agent/grounding``; ``ungrounded`` lists those no record backs) and ``composed``
when the router composed it from the records; ``truncated`` says a chat model's reply was cut at
``BIOMEDGPT_LLM_MAX_TOKENS`` or ``BIOMEDGPT_LLM_DEADLINE``. A named session is stored in ``BIOMEDGPT_HOME/sessions.sqlite`` and resumes from the
CLI, Python and Jupyter alike; a question without a session keeps nothing (no checkpoint), and when the router
plans it without a chat model it is answered without LangGraph, with the same result (``agent/fast_path.py``).

Each assistant has its own ``Services`` (``tools/services.py``: HTTP sessions, clients, the literature store),
built from its ``settings`` or handed in (``Assistant(services=...)``), and passes it to the graph in the run-time
context; its tools use those, so two assistants with different settings in one process never mix.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedgpt.core.errors import InputError, shorten
from biomedgpt.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from biomedgpt.tools.services import Services

#: Plan rounds per question before the graceful end.
DEFAULT_MAX_STEPS = 6


@dataclass
class AskResult:
    """One answered question; ``to_dict()`` has the keys of ``ask --json``."""

    answer: str
    citations: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    artifacts: dict[str, list[dict]] = field(default_factory=dict)
    session: str | None = None
    #: The attributes the question asked for (the columns of exports; not part of ``to_dict``).
    attributes: list[str] = field(default_factory=list)
    #: ``llm`` (a chat model wrote it) or ``composed`` (the router composed it from the records).
    answer_source: str = "composed"
    #: Sentences of a chat model's answer that state a fact no cited record backs (agent/grounding.py).
    ungrounded: list[str] = field(default_factory=list)
    #: Whether a chat model's reply this turn was cut at the token limit or the deadline.
    truncated: bool = False
    #: The reply a chat model's answer came from: finish_reason, seconds, output_tokens (the server's count), or
    #: empty (not part of ``to_dict``).
    llm: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "answer_source": self.answer_source, "ungrounded": self.ungrounded,
                "truncated": self.truncated, "citations": self.citations, "tool_calls": self.tool_calls,
                "artifacts": self.artifacts}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=str)

    def _repr_html_(self) -> str:
        from biomedgpt.agent.jupyter import render_html

        return render_html(self)

    def _repr_markdown_(self) -> str:
        from biomedgpt.agent.export import markdown

        return markdown(self)

    def to_dataframe(self) -> Any:
        """One row per entity of the answer: the attributes shown, ``source`` and ``url`` (``pandas`` extra)."""
        from biomedgpt.agent.export import to_dataframe

        return to_dataframe(self)

    def __str__(self) -> str:
        return self.answer


@dataclass
class Event:
    """One streamed event: ``tool_call``, ``tool_result``, ``progress``, ``token`` or ``result``."""

    kind: str
    data: Any


def result_from_state(values: dict[str, Any], session: str | None = None) -> AskResult:
    """Build the result of the last question from the graph's state."""
    from langchain_core.messages import AIMessage, ToolMessage

    from biomedgpt.agent.graph import ANSWER_NAME, turn_messages
    from biomedgpt.agent.state import ARTIFACT_KINDS

    turn = turn_messages(values.get("messages") or [])
    answer = next((m for m in reversed(turn) if isinstance(m, AIMessage) and m.name == ANSWER_NAME), None)
    results = {m.tool_call_id: m for m in turn if isinstance(m, ToolMessage)}
    calls = []
    for message in turn:
        if isinstance(message, AIMessage):
            malformed = message.additional_kwargs.get("malformed_calls") or {}
            for call in message.tool_calls:
                reply = results.get(call["id"])
                ok = reply is not None and reply.status != "error"
                error = None if ok else (str(reply.content) if reply is not None else "not run")
                args = malformed[call["id"]]["args"] if call["id"] in malformed else call["args"]
                calls.append({"name": call["name"], "args": args, "ok": ok, "error": error})
            for refused in message.additional_kwargs.get("refused_calls") or []:
                calls.append({"name": refused["name"], "args": refused["args"], "ok": False,
                              "error": "not run: no tool is offered for an off-domain, help or unclear question"})
    extras = answer.additional_kwargs if answer is not None else {}
    return AskResult(
        answer=str(answer.content) if answer is not None else "",
        citations=list(extras.get("citations", [])),
        tool_calls=calls,
        artifacts={kind: list(values.get(kind) or []) for kind in ARTIFACT_KINDS},
        session=session,
        attributes=list(values.get("attributes") or []),
        answer_source=str(extras.get("answer_source") or "composed"),
        ungrounded=list(extras.get("ungrounded") or []),
        truncated=bool(extras.get("truncated")),
        llm=dict(extras.get("llm") or {}),
    )


class Assistant:
    """The biomedical research assistant: ask questions, keep sessions, run scripts.

    ``llm`` may be a LangChain chat model (with ``bind_tools``) or a back-end spec such as
    ``"openai:gpt-4o"``; by default ``settings.llm`` (``BIOMEDGPT_LLM``) decides. ``tool_choice`` (default
    ``settings.tool_choice``): ``router`` or ``model`` (agent/modes.py). ``tools`` replaces the default tool set
    (tests, custom deployments). ``services`` are the HTTP clients and the literature store the tools use
    (default: built from ``settings``; assistants on the process-wide settings share
    ``tools/services.default_services()``); give them to share one set between assistants and other callers (the
    MCP server's ``ask`` and its direct tools), their ``settings`` then being the assistant's.
    """

    def __init__(self, settings: Settings | None = None, llm: Any = None, *, tools: Sequence[Any] | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, tool_choice: str | None = None,
                 services: Services | None = None) -> None:
        # deferred: the HTTP layer (requests-cache, Biopython) loads with the first assistant, not with `import biomedgpt`
        from biomedgpt.tools.services import Services, default_services

        if services is not None and settings is not None and services.settings is not settings:
            raise InputError("give Assistant settings= or services= (whose settings it then uses), not both")
        if services is None:
            # Assistants on the process-wide settings share their default Services (one literature store whose
            # bundled corpus is checked once); any other settings get services of their own.
            process_wide = settings is None or settings is get_settings()
            services = default_services() if process_wide else Services(settings)
        self.settings = services.settings
        self.services = services
        if tool_choice is not None and tool_choice not in ("router", "model"):
            raise InputError(f"tool_choice {tool_choice!r} is not 'router' or 'model'")
        self.tool_choice = tool_choice or self.settings.tool_choice
        self._llm_arg = llm
        self._tools = list(tools) if tools is not None else None
        self.max_steps = max_steps
        self._lock = threading.Lock()
        self._chat_model: Any = None
        self._chat_ready = False
        self._store: Any = None
        self._graphs: dict[str, Any] = {}

    # ------------------------------------------------------------------ set-up

    @property
    def backend(self) -> str:
        """The back end's name as shown to users (``none``, ``openai:MODEL``, …)."""
        if self._llm_arg is None:
            return self.settings.llm
        if isinstance(self._llm_arg, str):
            return self._llm_arg
        return type(self._llm_arg).__name__

    def chat_model(self) -> Any:
        if not self._chat_ready:
            if self._llm_arg is None or isinstance(self._llm_arg, str):
                from biomedgpt.agent.backends import make_chat_model

                self._chat_model = make_chat_model(self._llm_arg, self.settings)
            else:
                self._chat_model = self._llm_arg
            self._chat_ready = True
        return self._chat_model

    def store(self):
        """The session store (``BIOMEDGPT_HOME/sessions.sqlite``), opened on first use."""
        if self._store is None:
            from biomedgpt.agent.session import open_store

            self._store = open_store(self.settings)
        return self._store

    def graph(self, persistent: bool = True):
        """The compiled graph; ``persistent`` picks the session store's SQLite checkpointer, otherwise none: a
        question without a session keeps nothing, and its result comes from the streamed state."""
        key = "sqlite" if persistent else "none"
        with self._lock:
            if key not in self._graphs:
                from biomedgpt.agent.graph import build_graph

                saver = self.store().saver if persistent else None
                self._graphs[key] = build_graph(self.tools(), checkpointer=saver)
            return self._graphs[key]

    def tools(self) -> list:
        """The tools the graph offers: ``tools`` as given, else biomedgpt's own plus those of the MCP servers in
        ``settings.mcp_servers`` (``BIOMEDGPT_MCP_SERVERS``; agent/mcp_client.py)."""
        if self._tools is not None:
            return list(self._tools)
        from biomedgpt.agent.mcp_client import external_tools
        from biomedgpt.tools.langchain_tools import TOOL_NAMES, all_tools

        return all_tools() + external_tools(self.settings, taken=set(TOOL_NAMES))

    def _check(self, question: str, session: str | None) -> None:
        """Refuse an empty or over-long question and a bad session name before anything heavy starts."""
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"question {shorten(question)} is empty; ask something, e.g. 'Describe aspirin'")
        limit = self.settings.max_question_chars
        if len(question) > limit:  # refused before the graph (or anything heavy) starts
            raise InputError(f"the question has {len(question):,} characters, more than the {limit:,} accepted "
                             f"(BIOMEDGPT_MAX_QUESTION_CHARS); ask a shorter one")
        if session is not None:
            # deferred: the session module loads LangGraph's SQLite saver
            from biomedgpt.agent.session import check_session_name

            check_session_name(session)

    def _prepare(self, question: str, session: str | None):
        from langchain_core.messages import HumanMessage

        from biomedgpt.agent.context import Context
        from biomedgpt.agent.graph import recursion_limit

        self._check(question, session)
        graph = self.graph(persistent=session is not None)
        thread = session or f"ask-{uuid.uuid4().hex}"
        config = {"configurable": {"thread_id": thread}, "recursion_limit": recursion_limit(self.max_steps)}
        from biomedgpt.agent.backends import ChatLimits

        context = Context(services=self.services, chat_model=self.chat_model(), backend=self.backend,
                          max_steps=self.max_steps, tool_choice=self.tool_choice,
                          limits=ChatLimits.from_settings(self.settings))
        return graph, config, context, {"messages": [HumanMessage(question.strip())]}

    # ------------------------------------------------------------------ asking

    def ask(self, question: str, session: str | None = None) -> AskResult:
        """Answer ``question`` (with memory of ``session`` when given)."""
        result = None
        for event in self.stream(question, session=session):
            if event.kind == "result":
                result = event.data
        assert result is not None
        return result

    async def aask(self, question: str, session: str | None = None) -> AskResult:
        """``ask`` without blocking the event loop (the graph runs in a worker thread)."""
        # deferred: ~20 ms of imports that only async callers need
        import asyncio

        return await asyncio.to_thread(self.ask, question, session)

    def stream(self, question: str, session: str | None = None) -> Iterator[Event]:
        """Answer ``question`` step by step: tool calls, progress messages, tokens, then the result."""
        from biomedgpt.agent import fast_path

        if fast_path.applies(self, session):
            # Session-less and planned by the router: the same steps without LangGraph (agent/fast_path.py).
            self._check(question, session)
            prepared = fast_path.prepare(self, question.strip())
            if prepared is not None:
                yield from prepared.events()
                return
        from biomedgpt.tools.http import request_scope

        # The tools use this assistant's services (handed to them in the graph's context, see _prepare);
        # identical look-ups of one turn go out once (tools/http.request_scope).
        with request_scope():
            yield from self._stream(question, session)

    def _stream(self, question: str, session: str | None) -> Iterator[Event]:
        graph, config, context, inputs = self._prepare(question, session)
        # A named session: one turn at a time (its lock), continuing from its last answered turn
        # (agent/session.py: a turn without a stored answer leaves nothing behind).
        turn = self.store().turn(session) if session is not None else nullcontext(dict(config["configurable"]))
        with turn as configurable:
            yield from self._run(graph, {**config, "configurable": configurable}, config, context, inputs,
                                 question, session)

    def _run(self, graph: Any, run_config: dict, config: dict, context: Any, inputs: dict, question: str,
             session: str | None) -> Iterator[Event]:
        from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
        from langgraph.errors import GraphRecursionError

        streamed: dict = {}  # the state after the last step (a graph without a checkpointer has no get_state)
        try:
            for mode, chunk in graph.stream(inputs, run_config, context=context,
                                            stream_mode=["updates", "messages", "custom", "values"]):
                if mode == "values":
                    streamed = chunk
                elif mode == "custom":
                    message = chunk.get("progress") if isinstance(chunk, dict) else chunk
                    yield Event("progress", str(message))
                elif mode == "messages":
                    message, meta = chunk
                    if (isinstance(message, AIMessageChunk) and meta.get("langgraph_node") in ("plan", "answer")
                            and isinstance(message.content, str) and message.content):
                        yield Event("token", message.content)
                elif mode == "updates":
                    for node, update in (chunk or {}).items():
                        for message in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                            if isinstance(message, AIMessage) and node == "plan":
                                for call in message.tool_calls:
                                    yield Event("tool_call", {"name": call["name"], "args": call["args"]})
                            elif isinstance(message, ToolMessage):
                                yield Event("tool_result", {"name": message.name, "ok": message.status != "error",
                                                            "error": None if message.status != "error"
                                                            else str(message.content)})
        except GraphRecursionError:
            # Backstop only: the graph ends itself at max_steps. Answer from what the state holds.
            values = graph.get_state(config).values if session is not None else streamed
            from biomedgpt.agent.answer import citations_for, compose_answer, sources_from_state

            text = compose_answer(question, values, [], limited_after=self.max_steps, settings=self.settings)
            result = result_from_state(values, session)
            result.answer = text
            result.citations = citations_for(text, sources_from_state(values))
            yield Event("result", result)
            return
        values = graph.get_state(config).values if session is not None else streamed
        yield Event("result", result_from_state(values, session))

    # ------------------------------------------------------------------ sessions and scripts

    def sessions(self) -> list:
        """The stored sessions, newest first (``SessionInfo(name, turns, last_question, updated)``)."""
        return self.store().sessions()

    def history(self, session: str) -> list:
        """The questions and answers of ``session`` (``Turn(question, answer, citations)``)."""
        from biomedgpt.agent.session import check_session_name

        return self.store().history(check_session_name(session))

    def run(self, script: str | Path | dict, out: str | Path | None = None, resume: bool = False,
            progress: bool = False):
        """Run a YAML script (path, YAML text already parsed to a dict, or ``Script``); see ``agent/script.py``."""
        from biomedgpt.agent.script import run_script

        return run_script(self, script, out=out, resume=resume, progress=progress)

    def close(self) -> None:
        """Close the session store and this assistant's HTTP sessions (a later question, of this assistant or of
        another sharing its services, opens them again)."""
        if self._store is not None:
            self._store.close()
            self._store = None
            self._graphs.clear()
        self.services.close()
