"""``biomedgpt ingest PATH...`` and ``biomedgpt search "QUERY" [--k N] [--json]``: the literature store.

Why in the CLI: a scientist adds their own abstracts (JSONL, MEDLINE, PubMed XML, text, Markdown) once,
and every later ``ask`` can cite them. Re-running ``ingest`` is safe: it adds only what is new.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders: .jsonl .json .medline .nbib .xml .txt .md (optionally .gz)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Chunks embedded and stored per batch."),
    chunking: str = typer.Option("default", "--chunking", help="Chunk size preset: default, small or large."),
    as_json: bool = typer.Option(False, "--json", help="Print the ingest report as JSON."),
) -> None:
    """Add documents to the literature store (idempotent; an interrupted ingest resumes)."""
    from rich.console import Console

    from biomedgpt.core.terminal import quiet_libraries
    from biomedgpt.tools.literature import LiteratureStore

    quiet_libraries()  # progress is one status line on stderr (a terminal only); the report gets its own line

    store = LiteratureStore(chunking=chunking)
    report = store.ingest(paths, batch_size=batch_size, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(report.model_dump()))
        return
    console = Console(stderr=False)
    console.print(f"ingested {report.files} file(s), {report.records} record(s): "
                  f"{report.chunks_added} new chunk(s), {report.chunks_skipped} already stored, "
                  f"{report.skipped_rows} unreadable row(s)"
                  + (f", {report.skipped_files} binary file(s) skipped" if report.skipped_files else "")
                  + f" -> {store.location}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        console.print(f"  skipped: {problem}", highlight=False, markup=False, soft_wrap=True)


def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int = typer.Option(5, "--k", "-k", min=1, max=100, help="Number of passages."),
    as_json: bool = typer.Option(False, "--json", help='Print {"query": ..., "results": [Passage, ...]}.'),
) -> None:
    """Semantic search over the literature store (the bundled abstracts plus everything ingested)."""
    from biomedgpt.core.terminal import quiet_libraries
    from biomedgpt.tools.literature import LiteratureStore

    quiet_libraries()

    passages = LiteratureStore().search(query, k=k)
    if as_json:
        typer.echo(json.dumps({"query": query, "results": [p.model_dump() for p in passages]}))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not passages:
        console.print(f"no passages found for {query!r}", highlight=False)
        return
    table = Table(title=f"Literature: {query}", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source", no_wrap=True)
    table.add_column("title / passage")
    for n, passage in enumerate(passages, 1):
        source = passage.label + (f"\n{passage.year}" if passage.year else "") + f"\nchunk {passage.chunk}"
        text = passage.text if len(passage.text) <= 400 else passage.text[:397] + "..."
        table.add_row(str(n), f"{passage.score:.3f}", source, f"[bold]{_escape(passage.title or '')}[/bold]\n{_escape(text)}")
    console.print(table)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("search")(search)
