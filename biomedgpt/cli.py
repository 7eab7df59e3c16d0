"""The ``biomedgpt`` command line: ``biomedgpt --help`` lists every command.

Each area registers its commands from a module in ``biomedgpt/commands/`` that defines
``register(app)``; this file only builds the app, the global flags and the error policy:
a usage error (unknown option, bad value, missing argument) is typer's own message and exit code 2;
an expected failure (``BiomedGPTError``, config errors included) prints one clear line and exits 1;
``--debug`` (or ``BIOMEDGPT_DEBUG=1``) shows the traceback instead. No line echoes a long input whole.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from biomedgpt import __version__

_STATE = {"debug": os.environ.get("BIOMEDGPT_DEBUG", "") not in ("", "0", "false")}


_LONG_WORD = re.compile(r"\S{160,}")
MAX_LINE = 1000


def clip(message: str, limit: int = MAX_LINE) -> str:
    """``message`` with every run of 160+ non-space characters cut in the middle, then at most ``limit``
    characters: a 10 kB SMILES, sequence or question is never echoed whole."""
    message = _LONG_WORD.sub(lambda m: f"{m.group(0)[:60]}…({len(m.group(0)):,} characters)…{m.group(0)[-20:]}", message)
    return message if len(message) <= limit else message[: limit - 40] + f"… ({len(message):,} characters in all)"


def _describe(error: BaseException) -> str:
    from biomedgpt.core.errors import BiomedGPTError

    if isinstance(error, BiomedGPTError):
        return clip(f"error: {error}")
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    name = type(error).__name__
    return clip(f"unexpected error ({name}): {error} — run with --debug for the traceback")


def _passed_through() -> tuple[type[BaseException], ...]:
    """The exceptions typer itself handles: its usage errors (its vendored click's, ``TyperException``s), ``Exit``
    and ``Abort``, and the real click's when something loaded it (the CLI never imports click: ~40 ms)."""
    click = sys.modules.get("click")
    extra = (click.exceptions.Exit, click.exceptions.Abort, click.ClickException) if click is not None else ()
    return (typer.TyperException, typer.Exit, typer.Abort, *extra)


class _Group(TyperGroup):
    """Turns exceptions from any sub-command into one line on stderr and exit code 1; usage errors stay
    typer's (its message and exit code 2)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _passed_through():
            raise  # typer's usage errors (its vendored click), Exit and Abort: typer prints and exits
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - this is the error policy
            if _STATE["debug"]:
                raise
            typer.echo(_describe(error), err=True)
            raise typer.Exit(130 if isinstance(error, KeyboardInterrupt) else 1) from None


app = typer.Typer(
    cls=_Group,
    help="biomedgpt: a biomedical research assistant (molecules, proteins, literature), offline first.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biomedgpt {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    if debug:
        _STATE["debug"] = True


def _register_commands() -> None:
    import biomedgpt.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"biomedgpt.commands.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="biomedgpt")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
