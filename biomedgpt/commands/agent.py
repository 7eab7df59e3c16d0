"""The assistant's commands: ``biomedgpt ask``, ``biomedgpt chat``, ``biomedgpt run``.

    biomedgpt ask "Describe aspirin" [--session S] [--format md|json|csv] [--json] [--sdf F] [--cite bibtex|ris F]
    biomedgpt chat [--session S]          # /help lists the commands
    biomedgpt run examples/demo.yaml [--out report.md|report.jsonl] [--resume] [--format …] [--sdf F] [--cite …]

The terminal stays quiet: library progress bars are off (``core.terminal.quiet_libraries``), our own progress
is one status line on stderr when stderr is a terminal, and ``--format``/``--json`` print nothing on stdout but
the export. Ctrl-C cancels the running question within about two seconds (``core/cancel.py``): ``chat`` goes
back to its prompt, ``ask`` exits with 130, ``run`` ends with the finished steps saved.

Heavy libraries (langgraph, torch) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Optional, Tuple

import typer

CHAT_COMMANDS = (
    ("/help", "this list"),
    ("/new [NAME]", "start a new session"),
    ("/sessions", "list the stored sessions"),
    ("/history", "the questions and answers of this session"),
    ("/export FILE", "write the last answer to FILE (.md .json .csv .sdf .bib .ris)"),
    ("/model", "the chat back end, the BioMedGPT model and who picks the tools"),
    ("/tools", "the tools the assistant can call"),
    ("/quit", "leave (also Ctrl-D)"),
)
CHAT_HELP = "/help lists the commands · Ctrl-C cancels an answer · /quit leaves"
PROMPT = "you> "

FORMAT_HELP = "Print the result as md, json or csv (one row per entity, with a source column) instead of rich text."
SDF_HELP = "Write the molecules of the answer to this SDF file (RDKit SDWriter)."
CITE_HELP = "Write the literature cited to FILE as BibTeX or RIS, e.g. --cite bibtex refs.bib."


def _format(fmt: Optional[str], as_json: bool) -> Optional[str]:
    from biomedgpt.agent.export import FORMATS

    if fmt is not None and fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="'--format'")
    if as_json:
        if fmt not in (None, "json"):
            raise typer.BadParameter("--json is --format json; give one of them", param_hint="'--json'")
        return "json"
    return fmt


def _cite(cite: Optional[Tuple[str, Path]]) -> Optional[Tuple[str, Path]]:
    from biomedgpt.agent.export import CITE_FORMATS

    if cite is None or cite[0] is None:
        return None
    fmt = cite[0].lower()
    if fmt not in CITE_FORMATS:
        raise typer.BadParameter(f"{cite[0]!r} is not bibtex or ris", param_hint="'--cite'")
    return fmt, cite[1]


def _note(text: str, style: str = "dim") -> None:
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True).print(Text(text, style=style), soft_wrap=True)


def _exports(source: Any, sdf: Optional[Path], cite: Optional[Tuple[str, Path]]) -> None:
    """Write the SDF and citation files asked for; what was written (or why not) is one line on stderr."""
    from biomedgpt.agent.export import write_citations, write_sdf
    from biomedgpt.core.errors import InputError

    if sdf is not None:
        try:
            _note(f"wrote {write_sdf(source, sdf)} molecule(s) to {sdf}")
        except InputError as error:
            _note(f"{sdf} not written: {error}", "yellow")
    if cite is not None:
        try:
            _note(f"wrote {write_citations(source, cite[0], cite[1])} reference(s) as {cite[0]} to {cite[1]}")
        except InputError as error:
            _note(f"{cite[1]} not written: {error}", "yellow")


def ask(
    question: str = typer.Argument(..., help="The question, e.g. 'Describe CC(=O)Oc1ccccc1C(=O)O'."),
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Remember the conversation under this name."),
    as_json: bool = typer.Option(False, "--json", help="Print {answer, citations, tool_calls, artifacts} as JSON "
                                                        "(the same as --format json)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", metavar="md|json|csv", help=FORMAT_HELP),
    sdf: Optional[Path] = typer.Option(None, "--sdf", metavar="FILE", help=SDF_HELP),
    cite: Optional[Tuple[str, Path]] = typer.Option(None, "--cite", metavar="bibtex|ris FILE", help=CITE_HELP),
) -> None:
    """Ask one question; the answer cites its sources."""
    from rich.console import Console

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.export import render
    from biomedgpt.agent.render import describe_event, show_stream
    from biomedgpt.core.cancel import iterate_interruptible
    from biomedgpt.core.terminal import StatusLine, quiet_libraries

    quiet_libraries()
    fmt = _format(fmt, as_json)
    cite = _cite(cite)
    assistant = Assistant()
    try:
        with StatusLine("thinking…") as status:
            events = iterate_interruptible(lambda: assistant.stream(question, session=session))
            if fmt is None:
                result = show_stream(Console(), events, status=status)
            else:
                result = None
                for event in events:
                    if event.kind == "result":
                        result = event.data
                    elif event.kind in ("tool_call", "tool_result", "progress"):
                        status.update(describe_event(event) or "")
    except KeyboardInterrupt:  # core.cancel.Cancelled included: the question was stopped
        _note("cancelled", "yellow")
        raise typer.Exit(130) from None
    if result is None:  # pragma: no cover - the stream always ends with a result
        raise typer.Exit(1)
    if fmt is not None:
        typer.echo(render(result, fmt), nl=fmt == "json")
    _exports(result, sdf, cite)


def _chat_help(console: Any) -> None:
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for command, what in CHAT_COMMANDS:
        table.add_row(command, what)
    console.print(table)
    console.print("Anything else is a question. Ctrl-C cancels a running answer and comes back here.",
                  style="dim", highlight=False)


def _chat_tools(console: Any, assistant: Any) -> None:
    from rich.text import Text

    for tool in assistant.tools():
        server = (tool.metadata or {}).get("mcp_server")
        origin = f" (MCP server {server})" if server else ""
        first = " ".join((tool.description or "").split())
        first = first if len(first) <= 110 else first[:109] + "…"
        line = Text(tool.name, style="bold")
        line.append(f"{origin}: {first}")
        console.print(line, soft_wrap=True)


def _chat_model(console: Any, assistant: Any) -> None:
    settings = assistant.settings
    choice = getattr(assistant, "tool_choice", None) or getattr(settings, "tool_choice", "router")
    console.print(f"chat back end: {assistant.backend} (BIOMEDGPT_LLM)", highlight=False)
    console.print(f"BioMedGPT model for the tools: {settings.model} (BIOMEDGPT_MODEL)", highlight=False)
    console.print(f"tools picked by: {choice} (BIOMEDGPT_TOOL_CHOICE)", highlight=False)
    if settings.mcp_servers:
        console.print(f"external MCP servers: {settings.mcp_servers} (BIOMEDGPT_MCP_SERVERS)", highlight=False)


def chat(
    session: Optional[str] = typer.Option(None, "--session", "-s", help="Resume (or start) this session."),
) -> None:
    """A conversation in the terminal, with memory, streaming and cited answers."""
    from biomedgpt.core.cancel import sigint_for_this_thread_only

    # Ctrl-C must reach the main thread (input() at the prompt wakes for no other): threads started from here on
    # (numpy's BLAS pool on import included) never take it; the prompt and a running question open it.
    with sigint_for_this_thread_only():
        _chat(session)


def _chat(session: Optional[str]) -> None:
    from rich.console import Console
    from rich.markdown import Markdown
    from rich.table import Table
    from rich.text import Text

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.export import export_to
    from biomedgpt.agent.render import show_stream
    from biomedgpt.agent.session import check_session_name
    from biomedgpt.core.cancel import iterate_interruptible, receiving_sigint
    from biomedgpt.core.errors import BiomedGPTError, InputError
    from biomedgpt.core.terminal import StatusLine, quiet_libraries

    quiet_libraries()
    if session is not None:  # a bad name stops chat here, not at every question
        try:
            check_session_name(session)
        except InputError as error:
            raise typer.BadParameter(str(error), param_hint="'--session'") from None
    console = Console()
    assistant = Assistant()
    current = session or _new_session_name()
    last: Any = None
    console.print(Text(f"biomedgpt chat — session '{current}', back end {assistant.backend}. {CHAT_HELP}",
                       style="dim"))
    while True:
        try:
            with receiving_sigint():
                line = console.input(f"[bold green]{PROMPT}[/]").strip()
        except EOFError:
            console.print()
            break
        except KeyboardInterrupt:  # at the prompt: clear the line, stay (Ctrl-D or /quit leaves)
            console.print()
            console.print(Text("(Ctrl-D or /quit leaves)", style="dim"))
            continue
        if not line:
            continue
        if line.startswith("/"):
            command = line.split()[0].lower()
            argument = line.split(maxsplit=1)[1].strip() if " " in line else ""
            try:
                if command in ("/quit", "/exit", "/q"):
                    break
                if command in ("/help", "/?"):
                    _chat_help(console)
                elif command == "/new":
                    current = check_session_name(argument or _new_session_name())
                    last = None
                    console.print(Text(f"new session '{current}'", style="dim"))
                elif command == "/sessions":
                    table = Table("session", "questions", "last question", box=None)
                    for info in assistant.sessions():
                        mark = " *" if info.name == current else ""
                        table.add_row(info.name + mark, str(info.turns), info.last_question[:60])
                    console.print(table)
                elif command == "/history":
                    for turn in assistant.history(current):
                        console.print(Text(f"{PROMPT}{turn.question}", style="bold"))
                        console.print(Markdown(turn.answer or "(no answer)"))
                elif command == "/export":
                    if not argument:
                        raise InputError("/export needs a file name, e.g. /export answer.md (.md .json .csv .sdf "
                                         ".bib .ris)")
                    if last is None:
                        raise InputError("nothing to export yet: ask a question first")
                    console.print(Text(export_to(last, argument), style="dim"), soft_wrap=True)
                elif command == "/model":
                    _chat_model(console, assistant)
                elif command == "/tools":
                    _chat_tools(console, assistant)
                else:
                    console.print(Text(f"unknown command {command!r}. {CHAT_HELP}", style="yellow"))
            except BiomedGPTError as error:
                console.print(Text(f"error: {error}", style="red"), soft_wrap=True)
            continue
        try:
            with StatusLine("thinking…") as status, receiving_sigint():
                result = show_stream(console, iterate_interruptible(
                    lambda question=line: assistant.stream(question, session=current)), status=status)
            if result is not None:
                last = result
        except KeyboardInterrupt:  # core.cancel.Cancelled included: back to the prompt
            console.print(Text("cancelled", style="yellow"))
        except BiomedGPTError as error:
            console.print(Text(f"error: {error}", style="red"), soft_wrap=True)
    assistant.close()


def run(
    script: Path = typer.Argument(..., help="A YAML script with steps (see examples/demo.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the report here (.md or .jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Skip the steps that finished in an earlier run."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", metavar="md|json|csv", help=FORMAT_HELP),
    sdf: Optional[Path] = typer.Option(None, "--sdf", metavar="FILE", help=SDF_HELP),
    cite: Optional[Tuple[str, Path]] = typer.Option(None, "--cite", metavar="bibtex|ris FILE", help=CITE_HELP),
) -> None:
    """Run a script of questions; failing steps are recorded and the run goes on."""
    from rich.console import Console

    from biomedgpt.agent.assistant import Assistant
    from biomedgpt.agent.export import render
    from biomedgpt.agent.render import render_report, report_summary
    from biomedgpt.core.terminal import quiet_libraries

    quiet_libraries()
    fmt = _format(fmt, False)
    cite = _cite(cite)
    report = Assistant().run(script, out=out, resume=resume, progress=True)
    if fmt is None:
        render_report(Console(), report)
    else:
        typer.echo(render(report, fmt), nl=fmt == "json")
        _note(report_summary(report), "green" if report.ok and not report.interrupted else "yellow")
    _exports(report, sdf, cite)
    if report.interrupted:
        raise typer.Exit(130)
    if not report.ok:
        raise typer.Exit(1)


def _new_session_name() -> str:
    return "chat-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def register(app: typer.Typer) -> None:
    app.command("ask")(ask)
    app.command("chat")(chat)
    app.command("run")(run)
