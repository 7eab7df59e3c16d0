"""Conversation memory: ``open_store(settings)`` → a :class:`SessionStore` over ``home/sessions.sqlite``.

Why SQLite (``langgraph-checkpoint-sqlite``): a session named in the CLI must resume in Python and in
Jupyter and back, across processes, with no server. Checkpoints are read back with a strict msgpack
serializer: only LangGraph's allow-list of safe types (plain data and LangChain messages) is ever
revived, so a tampered database cannot make the assistant import and run arbitrary code.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from biomedgpt.core.errors import InputError
from biomedgpt.core.settings import Settings, get_settings

SESSIONS_FILE = "sessions.sqlite"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def strict_serializer() -> JsonPlusSerializer:
    """A serializer that revives only LangGraph's built-in safe types (``allowed_msgpack_modules=None``)."""
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def check_session_name(name: str) -> str:
    """A session name is 1–128 letters, digits or ``._:@-``; anything else is a clear error."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"session name {name!r} is not valid: use 1-128 letters, digits, '.', '_', ':', '@' or '-'")
    return name


@dataclass
class SessionInfo:
    """One stored session: its name, number of questions and the last question asked."""

    name: str
    turns: int
    last_question: str = ""
    updated: str = ""


@dataclass
class Turn:
    """One question and its answer, as stored in a session."""

    question: str
    answer: str
    citations: list[dict] = field(default_factory=list)


class SessionStore:
    """The SQLite checkpointer plus read helpers (list sessions, history)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self.saver = SqliteSaver(self.conn, serde=strict_serializer())
            self.saver.setup()
        except sqlite3.DatabaseError as error:
            raise InputError(f"session store {self.path} is unreadable ({error}); move it away to start afresh") from error

    def close(self) -> None:
        self.conn.close()

    def names(self) -> list[str]:
        with self.saver.lock:
            rows = self.conn.execute(
                "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints WHERE checkpoint_ns = '' "
                "GROUP BY thread_id ORDER BY last DESC").fetchall()
        return [row[0] for row in rows]

    def exists(self, name: str) -> bool:
        return self.saver.get_tuple({"configurable": {"thread_id": name}}) is not None

    def messages(self, name: str) -> list[Any]:
        found = self.saver.get_tuple({"configurable": {"thread_id": name}})
        if found is None:
            return []
        return list(found.checkpoint.get("channel_values", {}).get("messages", []) or [])

    def info(self, name: str) -> SessionInfo:
        found = self.saver.get_tuple({"configurable": {"thread_id": name}})
        turns = history_from_messages(self.messages(name))
        return SessionInfo(name=name, turns=len(turns), last_question=turns[-1].question if turns else "",
                           updated=str(found.checkpoint.get("ts", "")) if found else "")

    def sessions(self) -> list[SessionInfo]:
        return [self.info(name) for name in self.names()]

    def history(self, name: str) -> list[Turn]:
        return history_from_messages(self.messages(name))

    def delete(self, name: str) -> None:
        self.saver.delete_thread(name)


def history_from_messages(messages: list[Any]) -> list[Turn]:
    """Pair each user question with the final answer that followed it."""
    from langchain_core.messages import AIMessage, HumanMessage

    from biomedgpt.agent.graph import ANSWER_NAME

    turns: list[Turn] = []
    for message in messages:
        if isinstance(message, HumanMessage):
            turns.append(Turn(question=str(message.content), answer=""))
        elif isinstance(message, AIMessage) and message.name == ANSWER_NAME and turns:
            turns[-1].answer = str(message.content)
            turns[-1].citations = list(message.additional_kwargs.get("citations", []))
    return turns


def open_store(settings: Settings | None = None) -> SessionStore:
    """The session store of ``settings.home`` (``BIOMEDGPT_HOME/sessions.sqlite``)."""
    settings = settings or get_settings()
    return SessionStore(settings.path(SESSIONS_FILE))
