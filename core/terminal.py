"""A quiet terminal: ``quiet_libraries()`` silences library progress bars; ``StatusLine`` is our own progress.

Why: loading a model used to draw a 272-step "Loading weights" bar (transformers), the one-time GGUF
conversion another (``tqdm.auto``), and in a notebook each became a stderr output plus ``TqdmWarning:
IProgress not found``. The assistant's commands, the MCP server and the Jupyter magics call
:func:`quiet_libraries` first: every tqdm bar created afterwards is disabled whatever it asks for (transformers',
huggingface_hub's, sentence-transformers' and the GGUF conversion's are all tqdm; the training and evaluation
commands, which do not call it, keep theirs), and transformers' advisory warnings are off. (Not through
``HF_HUB_DISABLE_PROGRESS_BARS``: with it set, code that turns bars back on gets a warning on stderr.) Our own progress is one rich status line on stderr, shown only when stderr is a terminal
(:class:`StatusLine`); when it is not (a pipe, a file, ``2>err``, CI), nothing is written.

This module imports nothing of the project; rich and tqdm are imported when used.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

_QUIET = {"done": False}

#: Environment read by libraries when they are imported (set before they are).
QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
}


def _silence_tqdm() -> None:
    """Every tqdm bar created from now on is disabled, whatever it asks for (the notebook bar included,
    which would otherwise warn about missing ipywidgets)."""
    import tqdm.std

    cls = tqdm.std.tqdm
    if getattr(cls.__init__, "_biomedgpt_quiet", False):
        return
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    __init__._biomedgpt_quiet = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[method-assign]


def quiet_libraries() -> None:
    """Silence third-party progress bars and chatter (idempotent; cheap when the libraries are not loaded yet)."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if _QUIET["done"]:
        return
    _QUIET["done"] = True
    _silence_tqdm()
    if "transformers" in sys.modules:  # imported already: the environment came too late for it
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "chromadb", "httpx", "mcp"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*IProgress not found.*")
    # Library chatter a user cannot act on: tracer warnings of the one-time ONNX export, transformers' notes.
    for module in (r"transformers(\..*)?", r"torch\.(onnx|jit)(\..*)?", r"onnx(runtime)?(\..*)?",
                   r"sentence_transformers(\..*)?", r"huggingface_hub(\..*)?", r"chromadb(\..*)?"):
        warnings.filterwarnings("ignore", module=module)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def notice(text: str) -> None:
    """A one-off note about slow work (``converting … once, about 30 s``): on stderr when it is a terminal, nowhere
    otherwise (``2>err``, a notebook, a server's pipe)."""
    if stderr_is_terminal():
        print(text, file=sys.stderr, flush=True)


class StatusLine:
    """One transient rich status line on stderr (a spinner and the latest message); nothing at all when stderr
    is not a terminal or ``enabled`` is False. Use as a context manager; ``update(text)`` replaces the text."""

    def __init__(self, text: str = "working…", *, enabled: bool = True, console: Any = None) -> None:
        self.enabled = enabled and (console is not None or stderr_is_terminal())
        self._text = text
        self._status: Any = None
        self._console = console
        self._hidden = False

    def __enter__(self) -> StatusLine:
        if self.enabled:
            from rich.console import Console

            console = self._console or Console(stderr=True)
            self._status = console.status(self._shown(self._text), spinner="dots")
            self._status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
            self._status = None

    @staticmethod
    def _shown(text: str) -> Any:
        from rich.text import Text

        return Text(" ".join(str(text).split())[:200], style="dim")

    def update(self, text: str) -> None:
        self._text = text
        if self._status is not None:
            self._status.update(self._shown(text))

    def hide(self) -> None:
        """Take the line off the screen (another live view, e.g. a streamed draft, is about to draw)."""
        if self._status is not None and not self._hidden:
            self._status.stop()
            self._hidden = True

    def show(self) -> None:
        """Put a hidden line back."""
        if self._status is not None and self._hidden:
            self._status.start()
            self._hidden = False
