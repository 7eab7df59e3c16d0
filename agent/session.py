"""Conversation memory: ``open_store(settings)`` → a :class:`SessionStore` over ``home/sessions.sqlite``.

Why SQLite (``langgraph-checkpoint-sqlite``): a session named in the CLI must resume in Python and in
Jupyter and back, across processes, with no server. Checkpoints are read back with a strict msgpack
serializer: only LangGraph's allow-list of safe types (plain data and LangChain messages) is ever
revived, so a tampered database cannot make the assistant import and run arbitrary code.

Two rules keep a session whole under faults (issue 13):

* **One turn at a time.** A turn holds the session's lock file (``BIOMEDGPT_HOME/session-locks/NAME.lock``,
  a ``filelock`` lock) from reading the conversation to storing the answer, so two processes, two
  ``Assistant`` objects or two threads asking in one session at once are served one after the other and
  neither turn is lost.
* **A turn exists once its answer is stored.** A turn that ends without one (the process killed, Ctrl-C,
  an error) leaves nothing: history shows only answered turns (:meth:`SessionStore.last_answered`) and the
  next question continues from the last answered turn (the graph runs from that checkpoint, so the
  unanswered question is not kept twice). This is the one rule for killed and cancelled turns.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from biomedgpt.core.errors import InputError, shorten
from biomedgpt.core.settings import Settings, get_settings

SESSIONS_FILE = "sessions.sqlite"
LOCKS_DIR = "session-locks"
#: Seconds a turn waits for another turn of the same session to finish before giving up.
LOCK_WAIT = 600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def strict_serializer() -> JsonPlusSerializer:
    """A serializer that revives only LangGraph's built-in safe types (``allowed_msgpack_modules=None``)."""
    return JsonPlusSerializer(allowed_msgpack_modules=None)


def check_session_name(name: str) -> str:
    """A session name is 1–128 letters, digits or ``._:@-``; anything else is a clear error."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"session name {shorten(name)} is not valid: use 1-128 letters, digits, '.', '_', ':', '@' or '-'")
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

    def last_answered(self, name: str) -> tuple[Any | None, bool]:
        """``(checkpoint tuple, newest)``: the newest checkpoint of ``name`` whose last turn has its answer
        (``None`` when no turn was ever answered); ``newest`` is False when later, unanswered work exists."""
        newest = True
        for found in self.saver.list({"configurable": {"thread_id": name}}):
            if turn_complete(_messages_of(found)):
                return found, newest
            newest = False  # an unanswered turn, or the input checkpoint of the first one
        return None, newest

    def messages(self, name: str) -> list[Any]:
        """The conversation up to its last answered turn."""
        found, _ = self.last_answered(name)
        return _messages_of(found) if found is not None else []

    @contextmanager
    def turn(self, name: str, wait: float = LOCK_WAIT) -> Iterator[dict[str, Any]]:
        """Hold ``name``'s lock for one turn and yield the ``configurable`` to run it with: the thread, plus
        the checkpoint to continue from when the newest checkpoint holds an unanswered turn."""
        from filelock import FileLock, Timeout

        lock_path = self.path.parent / LOCKS_DIR / f"{check_session_name(name)}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_path), thread_local=False)
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise InputError(f"session {name!r} is busy with another question (lock {lock_path} held for more than "
                             f"{wait:.0f} s); try again when it has finished") from None
        try:
            configurable: dict[str, Any] = {"thread_id": name}
            found, newest = self.last_answered(name)
            if not newest:
                if found is None:  # no turn was ever answered: start the session afresh
                    self.saver.delete_thread(name)
                else:
                    configurable["checkpoint_id"] = found.config["configurable"]["checkpoint_id"]
            yield configurable
        finally:
            lock.release()

    def info(self, name: str) -> SessionInfo:
        found, _ = self.last_answered(name)
        turns = history_from_messages(self.messages(name))
        return SessionInfo(name=name, turns=len(turns), last_question=turns[-1].question if turns else "",
                           updated=str(found.checkpoint.get("ts", "")) if found else "")

    def sessions(self) -> list[SessionInfo]:
        return [self.info(name) for name in self.names()]

    def history(self, name: str) -> list[Turn]:
        return history_from_messages(self.messages(name))

    def delete(self, name: str) -> None:
        self.saver.delete_thread(name)


def _messages_of(found: Any) -> list[Any]:
    return list(found.checkpoint.get("channel_values", {}).get("messages", []) or []) if found is not None else []


def turn_complete(messages: list[Any]) -> bool:
    """True when the conversation's last question is followed by its stored answer."""
    from langchain_core.messages import AIMessage, HumanMessage

    from biomedgpt.agent.graph import ANSWER_NAME

    for message in reversed(messages):
        if isinstance(message, AIMessage) and message.name == ANSWER_NAME:
            return True
        if isinstance(message, HumanMessage):
            return False
    return False


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
