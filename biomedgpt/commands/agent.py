"""The assistant's commands: ``biomedgpt ask``, ``biomedgpt chat``, ``biomedgpt run``.

    biomedgpt ask "Describe aspirin" [--session S] [--json]
    biomedgpt chat [--session S]          # /new, /sessions, /history, /quit
    biomedgpt run examples/demo.yaml [--out report.md|report.jsonl] [--resume]

Heavy libraries (langgraph, torch) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional

import typer

CHAT_HELP = "/new starts a new session · /sessions lists them · /history shows this one · /quit leaves"


def ask(
    question: str = typer.Argument(..., help="The question, e.g. 'Describe CC(=O)Oc1ccccc1C(=O)O'."),
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Remember the conversation under this name."),
    as_json: bool = typer.Option(False, "--json", help="Print {answer, citations, tool_calls, artifacts} as JSON."),
) -> None:
    """Ask one question; the answer cites its sources."""
    from rich.console import Console

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.render import show_stream

    assistant = Assistant()
    if as_json:
        typer.echo(assistant.ask(question, session=session).to_json())
        return
    show_stream(Console(), assistant.stream(question, session=session), notes=Console(stderr=True))


def chat(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Resume (or start) this session."),
) -> None:
    """A conversation in the terminal, with memory, streaming and cited answers."""
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.table import Table
    from rich.text import Text

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.render import show_stream
    from biomedgpt.agent.session import check_session_name
    from biomedgpt.core.errors import BiomedGPTError, InputError

    if session is not None:  # a bad name stops chat here, not at every question
        try:
            check_session_name(session)
        except InputError as error:
            raise typer.BadParameter(str(error), param_hint="'--session'") from None
    console = Console()
    assistant = Assistant()
    current = session or _new_session_name()
    console.print(Text(f"biomedgpt chat — session '{current}', back end {assistant.backend}. {CHAT_HELP}",
                       style="dim"))
    while True:
        try:
            line = console.input("[bold green]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if not line:
            continue
        if line.startswith("/"):
            command = line.split()[0].lower()
            if command in ("/quit", "/exit", "/q"):
                break
            if command == "/new":
                wanted = line.split(maxsplit=1)[1].strip() if " " in line else _new_session_name()
                try:
                    current = check_session_name(wanted)
                except InputError as error:
                    console.print(Text(f"error: {error}", style="red"))
                    continue
                console.print(Text(f"new session '{current}'", style="dim"))
            elif command == "/sessions":
                table = Table("session", "questions", "last question", box=None)
                for info in assistant.sessions():
                    mark = " *" if info.name == current else ""
                    table.add_row(info.name + mark, str(info.turns), info.last_question[:60])
                console.print(table)
            elif command == "/history":
                for turn in assistant.history(current):
                    console.print(Text(f"you> {turn.question}", style="bold"))
                    console.print(Markdown(turn.answer or "(no answer)"))
            else:
                console.print(Text(f"unknown command {command!r}. {CHAT_HELP}", style="yellow"))
            continue
        try:
            show_stream(console, assistant.stream(line, session=current))
        except BiomedGPTError as error:
            console.print(Text(f"error: {error}", style="red"))
    assistant.close()


def run(
    script: Path = typer.Argument(..., help="A YAML script with steps (see examples/demo.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report here (.md or .jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Skip the steps that finished in an earlier run."),
) -> None:
    """Run a script of questions; failing steps are recorded and the run goes on."""
    from rich.console import Console

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.render import render_report

    report = Assistant().run(script, out=out, resume=resume, progress=True)
    render_report(Console(), report)
    if not report.ok:
        raise typer.Exit(1)


def _new_session_name() -> str:
    return "chat-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("chat")(chat)
    app.command("run")(run)
