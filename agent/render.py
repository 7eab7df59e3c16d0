"""Terminal rendering with rich: ``render_result(console, result)``, ``render_report(console, report)``.

Why a separate module: the CLI's ``ask``, ``chat`` and ``run`` show answers the same way (the
answer as Markdown, then its sources as a table with links) and the chat REPL shows streamed
events (tool calls, progress, failures) as dim one-liners.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text


def format_call(name: str, args: dict[str, Any], limit: int = 60) -> str:
    """``pubchem_lookup(query='aspirin')``, long values shortened."""
    shown = []
    for key, value in (args or {}).items():
        text = repr(value)
        if len(text) > limit:
            text = text[: limit - 4] + "…" + text[-3:]
        shown.append(f"{key}={text}")
    return f"{name}({', '.join(shown)})"


def citations_table(citations: list[dict]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("source")
    table.add_column("title")
    table.add_column("link", overflow="fold")
    for c in citations:
        table.add_row(f"[{c['label']}]", c.get("title") or "", c.get("url") or "")
    return table


def render_result(console: Console, result: Any) -> None:
    """Print an ``AskResult``: the answer, then failed tools and sources."""
    console.print(Markdown(result.answer or "(no answer)"))
    if result.citations:
        console.print()
        console.print(Text("Sources", style="bold"))
        console.print(citations_table(result.citations))


def render_event(console: Console, event: Any) -> None:
    """One streamed event of ``Assistant.stream`` as a dim line."""
    if event.kind == "tool_call":
        console.print(Text(f"→ {format_call(event.data['name'], event.data['args'])}", style="dim cyan"))
    elif event.kind == "tool_result":
        if event.data["ok"]:
            console.print(Text(f"✓ {event.data['name']}", style="dim green"))
        else:
            first = (event.data.get("error") or "").splitlines()[0][:160]
            console.print(Text(f"✗ {event.data['name']}: {first}", style="yellow"))
    elif event.kind == "progress":
        console.print(Text(f"… {event.data}", style="dim"))


def show_stream(console: Console, events: Any, notes: Console | None = None) -> Any:
    """Show ``Assistant.stream`` events live and return the final ``AskResult``.

    Tool calls, results and progress lines go to ``notes`` (default: ``console``) as they happen;
    tokens of a chat model's answer are shown live and then replaced by the checked, cited answer.
    """
    from rich.live import Live

    notes = notes or console
    draft = ""
    result = None
    with Live(Text(""), console=console, refresh_per_second=8, transient=True) as live:
        for event in events:
            if event.kind == "token":
                draft += event.data
                live.update(Markdown(draft))
            elif event.kind == "result":
                result = event.data
            else:
                if draft:  # text before a tool call was thinking aloud; start afresh
                    draft = ""
                    live.update(Text(""))
                render_event(live.console if notes is console else notes, event)
    if result is not None:
        render_result(console, result)
    return result


def render_report(console: Console, report: Any) -> None:
    """Print a script's report (Markdown) and a one-line summary."""
    console.print(Markdown(report.to_markdown()))
    style = "green" if report.ok else "yellow"
    summary = f"{len(report.steps)} steps, {len(report.failed)} failed; session '{report.session}'"
    if report.out:
        summary += f"; report written to {report.out}"
    console.print(Text(summary, style=style))
