"""``biomedgpt mcp``: serve the tools (and the whole assistant as ``ask``) over the Model Context Protocol.

    biomedgpt mcp                                   # stdio, for Claude Desktop / Claude Code / Cursor
    biomedgpt mcp --http [--host 127.0.0.1] [--port 8765]   # streamable HTTP at http://HOST:PORT/mcp

The server lives in ``agent/mcp_server.py``; the mcp SDK is imported when the command runs.
"""

from __future__ import annotations

import typer


def mcp(
    http: bool = typer.Option(False, "--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on with --http."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port to listen on with --http."),
) -> None:
    """Serve the biomedgpt tools and the assistant as an MCP server (stdio by default)."""
    from biomedgpt.agent.mcp_server import serve

    if http:
        typer.echo(f"biomedgpt MCP server on http://{host}:{port}/mcp (Ctrl-C stops it)", err=True)
    try:
        serve(http=http, host=host, port=port)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def register(app: typer.Typer) -> None:
    app.command("mcp")(mcp)
