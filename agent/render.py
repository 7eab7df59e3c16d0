"""Terminal rendering with rich: ``render_result(console, result)``, ``render_report(console, report)``.

Why a separate module: the CLI's ``ask``, ``chat`` and ``run`` show answers the same way (the
answer as Markdown, the tools it called on one dim line, then its sources, one per line with the whole
link: a URL is never split across lines, so it stays clickable and copyable). Streamed events (tool calls,
progress, failures) are not printed: they update one transient status line on stderr
(``core.terminal.StatusLine``), shown only when stderr is a terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markdown import Markdown
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


def source_line(citation: dict) -> Text:
    """``[PubChem CID 2244] Aspirin https://…``: one source, its link whole (and clickable in a terminal)."""
    line = Text(f"[{citation['label']}]", style="bold")
    if citation.get("title"):
        line.append(f" {citation['title']}")
    url = citation.get("url") or ""
    if url:
        line.append(" ")
        line.append(url, style=f"link {url} blue")
    return line


def tools_line(tool_calls: list[dict]) -> Text | None:
    """The tools an answer called, on one dim line (``tools: molecule_properties(smiles='CCO') ✓``)."""
    if not tool_calls:
        return None
    shown = [f"{format_call(c['name'], c.get('args') or {})} {'✓' if c.get('ok') else '✗'}" for c in tool_calls]
    return Text("tools: " + ", ".join(shown), style="dim")


def render_result(console: Console, result: Any) -> None:
    """Print an ``AskResult``: the answer, the tools it called, then its sources (one per line, links whole).

    The source lines are printed with ``soft_wrap``: rich inserts no line breaks, the terminal wraps them, so a
    long URL stays one piece of text."""
    console.print(Markdown(result.answer or "(no answer)"))
    calls = tools_line(result.tool_calls)
    if calls is not None:
        console.print(calls, soft_wrap=True)
    if result.citations:
        console.print()
        console.print(Text("Sources", style="bold"))
        for citation in result.citations:
            console.print(source_line(citation), soft_wrap=True)


def describe_event(event: Any) -> str | None:
    """One streamed event of ``Assistant.stream`` as the status line's text (None: nothing to show)."""
    if event.kind == "tool_call":
        return f"→ {format_call(event.data['name'], event.data['args'])}"
    if event.kind == "tool_result":
        if event.data["ok"]:
            return f"✓ {event.data['name']}"
        first = ((event.data.get("error") or "").splitlines() or [""])[0][:160]
        return f"✗ {event.data['name']}: {first}"
    if event.kind == "progress":
        return f"… {event.data}"
    return None


def show_stream(console: Console, events: Any, status: Any = None) -> Any:
    """Show ``Assistant.stream`` events and return the final ``AskResult``.

    Tool calls, results and progress update ``status`` (a ``core.terminal.StatusLine``: one line on stderr when
    it is a terminal, else nothing); tokens of a chat model's answer are shown live on a terminal (the status
    line steps aside meanwhile) and then replaced by the checked, cited answer.
    """
    from rich.live import Live

    draft = ""
    result = None
    live: Live | None = None
    try:
        for event in events:
            if event.kind == "token":
                draft += event.data
                if console.is_terminal:
                    if live is None:
                        if status is not None:
                            status.hide()  # one live view at a time on a terminal
                        live = Live(Text(""), console=console, refresh_per_second=8, transient=True)
                        live.start()
                    live.update(Markdown(draft))
            elif event.kind == "result":
                result = event.data
            else:
                draft = ""  # text before a tool call was thinking aloud; start afresh
                if live is not None:
                    live.stop()
                    live = None
                text = describe_event(event)
                if text and status is not None:
                    status.update(text)
                    status.show()
    finally:
        if live is not None:
            live.stop()
    if status is not None:
        status.hide()
    if result is not None:
        render_result(console, result)
    return result


def report_summary(report: Any) -> str:
    """``8 steps (5 resumed), 0 failed; session 's'; report written to r.md`` (and what an interruption left)."""
    resumed = sum(1 for s in report.steps if getattr(s, "resumed", False))
    total = getattr(report, "total", None) or len(report.steps)
    done = f"{len(report.steps)} of {total} steps" if getattr(report, "interrupted", False) else f"{total} steps"
    summary = f"{done}{f' ({resumed} resumed)' if resumed else ''}, {len(report.failed)} failed; " \
              f"session '{report.session}'"
    if report.out:
        summary += f"; report written to {report.out}"
    if getattr(report, "interrupted", False):
        summary = "interrupted: " + summary + (" (--resume continues from there)" if report.out else "")
    return summary


def render_report(console: Console, report: Any) -> None:
    """Print a script's report (Markdown) and a one-line summary."""
    console.print(Markdown(report.to_markdown()))
    style = "green" if report.ok and not getattr(report, "interrupted", False) else "yellow"
    console.print(Text(report_summary(report), style=style), soft_wrap=True)
