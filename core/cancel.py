"""Cancelling a running question: ``with cancel_scope() as stop: ...``; deep code calls ``check_cancelled()``.

Why a ContextVar holding a ``threading.Event``: the question runs in worker threads (LangGraph's tools,
the model's ``generate``), several calls below the front end that sees Ctrl-C. The front end sets the
event; the work checks it where it waits — between generated tokens (``model/biomedgpt.py``), before each
HTTP try and during every backoff or rate-limit wait (``tools/http.py``, through :func:`sleep`) — and
raises :class:`Cancelled`. LangGraph and LangChain start their threads with a copy of the context, so
they see the event of the question they belong to, and two questions in one process (the MCP server)
never cancel each other.

:func:`run_interruptible` and :func:`iterate_interruptible` run work in a daemon thread inside such a
scope and turn Ctrl-C in the main thread into a cancelled question within ``grace`` seconds: the event is
set, the worker gets ``grace`` seconds to stop at its next check, and a worker blocked where no check
reaches (a socket read) is left to finish on its own while the caller goes on.

This module imports nothing of the project.
"""

from __future__ import annotations

import contextvars
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

#: Seconds a worker gets to stop at its next check after Ctrl-C (the question is reported cancelled by then).
DEFAULT_GRACE = 1.5
_POLL = 0.05

_STOP: ContextVar[threading.Event | None] = ContextVar("biomedgpt_stop_event", default=None)


class Cancelled(KeyboardInterrupt):
    """The running question was cancelled (Ctrl-C); nothing of it is kept.

    A ``KeyboardInterrupt`` (so a ``BaseException``), like ``asyncio.CancelledError``: no ``except Exception``
    on the way up — a tool node turning failures into messages, a script recording a failed step — mistakes
    a cancellation for a failure and carries on."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


def current_event() -> threading.Event | None:
    """The stop event of the work running in this context (None outside a :func:`cancel_scope`)."""
    return _STOP.get()


def cancelled() -> bool:
    """Whether the work running in this context has been asked to stop."""
    event = _STOP.get()
    return event is not None and event.is_set()


def check_cancelled() -> None:
    """Raise :class:`Cancelled` when the work running in this context has been asked to stop."""
    if cancelled():
        raise Cancelled()


def sleep(seconds: float) -> None:
    """``time.sleep`` that ends early with :class:`Cancelled` when the work is asked to stop."""
    event = _STOP.get()
    if event is None:
        if seconds > 0:
            time.sleep(seconds)
        return
    if event.wait(max(0.0, seconds)):
        raise Cancelled()


@contextmanager
def cancel_scope(event: threading.Event | None = None) -> Iterator[threading.Event]:
    """Run the block (and the threads it starts with a copied context) under ``event`` (a new one by default)."""
    event = event if event is not None else threading.Event()
    token = _STOP.set(event)
    try:
        yield event
    finally:
        _STOP.reset(token)


def _block_sigint() -> None:
    """Keep SIGINT away from this worker thread and every thread it starts (LangGraph's pools, ONNX Runtime's,
    the MCP client's loop), so that Ctrl-C always reaches the main thread: one blocked in ``input()`` at the chat
    prompt is woken only by a signal delivered to it."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _masking() -> bool:
    return hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()


@contextmanager
def sigint_for_this_thread_only() -> Iterator[None]:
    """Block SIGINT in the calling (main) thread for the block, so that every thread started inside it — numpy's
    BLAS pool on import, LangGraph's, ONNX Runtime's — inherits the block and never takes a Ctrl-C meant for the
    main thread; :func:`receiving_sigint` opens it where the main thread waits (a prompt, a question). A Ctrl-C
    that comes while it is blocked waits and arrives there. Used by ``biomedgpt chat``, whose ``input()`` is woken
    only by a signal delivered to the main thread itself."""
    if not _masking():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def receiving_sigint() -> Iterator[None]:
    """Inside :func:`sigint_for_this_thread_only`: let Ctrl-C reach the main thread for this block."""
    if not _masking():
        yield
        return
    handler = signal.getsignal(signal.SIGINT)
    if handler is not None:
        # Installed again by Python, which interrupts a blocking read: a C library that re-installed it with
        # signal(3) (BSD semantics, SA_RESTART) would make input() restart its read and never see the Ctrl-C.
        signal.signal(signal.SIGINT, handler)
    previous = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _interrupted(event: threading.Event, worker: threading.Thread, grace: float) -> Cancelled:
    event.set()
    worker.join(grace)
    return Cancelled()


def run_interruptible(fn: Callable[..., T], *args: Any, grace: float = DEFAULT_GRACE, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a daemon thread inside a cancel scope; Ctrl-C (``KeyboardInterrupt`` in the
    calling thread) stops it and raises :class:`Cancelled` within ``grace`` seconds."""
    event = threading.Event()
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def work() -> None:
        _block_sigint()
        with cancel_scope(event):
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                box["error"] = error

    worker = threading.Thread(target=context.run, args=(work,), name="biomedgpt-question", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(_POLL)
    except KeyboardInterrupt:
        raise _interrupted(event, worker, grace) from None
    if "error" in box:
        raise box["error"]
    return box["value"]


def iterate_interruptible(make: Callable[[], Iterator[T]], grace: float = DEFAULT_GRACE) -> Iterator[T]:
    """The items of the iterator ``make()`` (created and advanced in a daemon thread inside a cancel scope);
    Ctrl-C while waiting for the next item stops the work and raises :class:`Cancelled` within ``grace`` s.
    Leaving the loop early (``break``, an error in the caller) stops the work too."""
    event = threading.Event()
    items: queue.Queue = queue.Queue(maxsize=64)
    done = object()
    context = contextvars.copy_context()

    def put(item: Any) -> bool:
        while not event.is_set():
            try:
                items.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        _block_sigint()
        with cancel_scope(event):
            try:
                iterator = make()
                try:
                    for item in iterator:
                        if not put(("item", item)):
                            break
                finally:
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
            except BaseException as error:  # noqa: BLE001 - handed to the caller
                put(("error", error))
                return
            put(("done", done))

    worker = threading.Thread(target=context.run, args=(work,), name="biomedgpt-question", daemon=True)
    worker.start()
    try:
        while True:
            try:
                kind, value = items.get(timeout=_POLL)
            except queue.Empty:
                if not worker.is_alive() and items.empty():
                    return
                continue
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    except KeyboardInterrupt:
        raise _interrupted(event, worker, grace) from None
    finally:
        event.set()  # a caller that stopped early (or failed) stops the work as well
