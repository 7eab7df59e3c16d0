"""Progress and retry messages from deep inside the tools: ``with listen(print_it): client.by_name("aspirin")``.

Why a ContextVar and not a logger or a callback argument: the HTTP layer is several calls below
the code that wants to show "PubChem busy, retrying in 2 s" (the agent forwards it into LangGraph's
``custom`` stream, the CLI prints it). A context variable reaches that far without threading a
callback through every signature, and concurrent agent runs (asyncio tasks, threads started with
``contextvars.copy_context``) each see their own listener.

A listener is any callable ``callback(message: str, **data)``; a callable that takes only the message
(``callback(message)``) works too and simply gets no data. Without one, messages go to
``logging.debug`` on the ``biomedgpt.tools.progress`` logger. A listener that raises never breaks
the request that reported: the exception is logged and dropped.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[..., None]

_LISTENER: ContextVar[Listener | None] = ContextVar("biomedgpt_progress_listener", default=None)


def report(message: str, **data: Any) -> None:
    """Send ``message`` (one line written for a person) and structured ``data`` to the current listener."""
    log.debug("%s %s", message, data if data else "")
    listener = _LISTENER.get()
    if listener is None:
        return
    try:
        listener(message, **data)
    except Exception:  # noqa: BLE001 - a broken display must not fail the look-up it reports on
        log.exception("progress listener failed on %r", message)


def _accepts_data(callback: Listener) -> bool:
    """Whether ``callback`` takes keyword data (``**data``) or only the message."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass the message only
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


@contextmanager
def listen(callback: Listener) -> Iterator[Listener]:
    """Install ``callback`` as the listener for the code inside the ``with`` block (restored afterwards)."""
    if callback is not None and not _accepts_data(callback):
        plain = callback

        def callback(message: str, **_: Any) -> None:
            plain(message)

    token = _LISTENER.set(callback)
    try:
        yield callback
    finally:
        _LISTENER.reset(token)


def current_listener() -> Listener | None:
    """The installed listener, e.g. to hand it to a worker thread via ``listen(current_listener())``."""
    return _LISTENER.get()
