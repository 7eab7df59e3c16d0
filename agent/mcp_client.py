"""Tools of external MCP servers for the agent: ``BIOMEDGPT_MCP_SERVERS=~/servers.json``.

The file is in the ``mcpServers`` format of Claude Desktop (and Claude Code's ``.mcp.json``)::

    {"mcpServers": {
        "fetch":  {"command": "uvx", "args": ["mcp-server-fetch"], "env": {"KEY": "value"}},
        "remote": {"type": "http", "url": "https://example.org/mcp", "headers": {"Authorization": "Bearer …"}},
        "legacy": {"type": "sse", "url": "http://127.0.0.1:9000/sse"}
    }}

An entry with ``command`` is started over stdio (``args``, ``env`` added to a minimal environment, ``cwd``);
one with ``url`` is reached over streamable HTTP (``type`` ``http``/``streamable-http``, the default) or SSE
(``type: sse``); ``"disabled": true`` skips it. The servers' tools are listed once per process (through
``langchain-mcp-adapters``) and join the assistant's tools under their own names (``SERVER_NAME`` first when a
name is already taken). A chat model that picks its own tools (``BIOMEDGPT_TOOL_CHOICE=model``) can call them;
the router never plans them: it knows only biomedgpt's own tools and what their records mean.

Why a wrapper around the adapters' tools: they are coroutine-only, while the graph's tool node runs tools
synchronously in worker threads; each call here runs on one private event loop and waits for its answer
while watching the question's stop event (Ctrl-C cancels the call). A failing server or tool raises
:class:`McpError` with the server's name and the one-line reason.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from biomedgpt.core.cancel import Cancelled, cancelled
from biomedgpt.core.errors import BiomedGPTError, ConfigError
from biomedgpt.core.settings import Settings, get_settings

#: Seconds to start a server and list its tools.
LIST_TIMEOUT = 60.0
_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class McpError(BiomedGPTError):
    """An external MCP server could not be reached, or one of its tools failed; the message names the server."""


# ----------------------------------------------------------------------------- the file


def read_servers(path: str | Path) -> dict[str, dict[str, Any]]:
    """The ``mcpServers`` entries of ``path``, checked; a wrong file is a ``ConfigError`` naming it and the entry."""
    file = Path(path).expanduser()
    where = f"BIOMEDGPT_MCP_SERVERS file {file}"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{where} cannot be read: {error}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{where} is not valid JSON: {error}") from None
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{where} must be a JSON object with an \"mcpServers\" object (Claude Desktop's format)")
    checked: dict[str, dict[str, Any]] = {}
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: server {name!r} must be an object with \"command\" or \"url\"")
        if entry.get("disabled"):
            continue
        checked[str(name)] = connection(str(name), entry, where)
    return checked


def connection(name: str, entry: dict[str, Any], where: str = "BIOMEDGPT_MCP_SERVERS") -> dict[str, Any]:
    """A ``langchain-mcp-adapters`` connection for one ``mcpServers`` entry."""
    if not any(key in entry for key in ("command", "url", "type", "transport")):
        raise ConfigError(f"{where}: server {name!r} needs a \"command\" (a program to start) or a \"url\"")
    kind = str(entry.get("type") or entry.get("transport") or ("stdio" if "command" in entry else "http")).lower()
    if kind == "stdio":
        command = entry.get("command")
        args = entry.get("args", [])
        if not isinstance(command, str) or not command:
            raise ConfigError(f"{where}: server {name!r} needs a \"command\" (a program to start)")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ConfigError(f"{where}: server {name!r}: \"args\" must be a list of strings")
        env = entry.get("env")
        if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ConfigError(f"{where}: server {name!r}: \"env\" must map names to strings")
        found: dict[str, Any] = {"transport": "stdio", "command": command, "args": list(args), "env": env}
        if entry.get("cwd"):
            found["cwd"] = str(entry["cwd"])
        return found
    if kind in ("http", "streamable-http", "streamable_http", "sse"):
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: server {name!r} needs an http(s) \"url\"")
        headers = entry.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise ConfigError(f"{where}: server {name!r}: \"headers\" must be an object")
        found = {"transport": "sse" if kind == "sse" else "streamable_http", "url": url}
        if headers:
            found["headers"] = {str(k): str(v) for k, v in headers.items()}
        return found
    raise ConfigError(f"{where}: server {name!r} has type {kind!r}; use stdio, http or sse")


# ----------------------------------------------------------------------------- one event loop for every call


class _Loop:
    """A daemon thread running one asyncio loop for the MCP sessions of this process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="biomedgpt-mcp-client", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Run ``coroutine`` on the loop; wait for it while watching the stop event (Ctrl-C cancels it)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop())
        waited = 0.0
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                waited += 0.1
                if cancelled():
                    future.cancel()
                    raise Cancelled() from None
                if timeout is not None and waited >= timeout:
                    future.cancel()
                    raise TimeoutError(f"no answer within {timeout:g} s") from None


_LOOP = _Loop()
_CACHE: dict[tuple, list[BaseTool]] = {}
_CACHE_LOCK = threading.Lock()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                parts.append(str(block.get("text") or block.get("url") or json.dumps(block, default=str)))
            else:
                parts.append(str(block))
        return "\n".join(parts)
    return str(content)


def _wrap(tool: BaseTool, server: str, name: str) -> StructuredTool:
    """A synchronous (and asynchronous) LangChain tool around one of the adapters' coroutine tools."""
    from langchain_core.tools import ToolException

    call = tool.coroutine  # type: ignore[attr-defined]

    def reason(error: BaseException) -> str:
        text = " ".join((_text(error.args[0]) if error.args else str(error)).split())
        return text or type(error).__name__

    async def acall(**arguments: Any) -> tuple[str, Any]:
        try:
            content, artifact = await call(**arguments)
        except ToolException as error:
            raise McpError(f"MCP server {server!r}, tool {tool.name!r}: {reason(error)}") from None
        structured = getattr(artifact, "get", lambda *_: None)("structured_content") if artifact else None
        return _text(content), structured

    def run(**arguments: Any) -> tuple[str, Any]:
        try:
            return _LOOP.run(acall(**arguments))
        except (McpError, Cancelled):
            raise
        except Exception as error:  # noqa: BLE001 - a transport failure names the server
            raise McpError(f"MCP server {server!r}, tool {tool.name!r} failed: {type(error).__name__}: "
                           f"{reason(error)}") from None

    return StructuredTool(name=name, description=tool.description or f"{tool.name} (MCP server {server})",
                          args_schema=tool.args_schema, func=run, coroutine=acall,
                          response_format="content_and_artifact",
                          metadata={"record": None, "mcp_server": server, "mcp_tool": tool.name})


async def _list(server: str, conn: dict[str, Any]) -> list[BaseTool]:
    from langchain_mcp_adapters.tools import load_mcp_tools

    return await load_mcp_tools(None, connection=conn, server_name=server, handle_tool_errors=False)


def load_tools(servers: dict[str, dict[str, Any]], taken: set[str] | None = None,
               timeout: float = LIST_TIMEOUT) -> list[BaseTool]:
    """Start (or reach) each server, list its tools and wrap them; names in ``taken`` get the server's prefix."""
    taken = set(taken or ())
    found: list[BaseTool] = []
    for server, conn in servers.items():
        try:
            listed = _LOOP.run(_list(server, conn), timeout=timeout)
        except Cancelled:
            raise
        except Exception as error:  # noqa: BLE001 - reported with the server's name
            text = " ".join(str(error).split()) or type(error).__name__
            raise McpError(f"MCP server {server!r} could not be reached to list its tools: "
                           f"{type(error).__name__}: {text}") from None
        for tool in listed:
            name = tool.name if tool.name not in taken else _NAME.sub("_", f"{server}_{tool.name}")[:64]
            taken.add(name)
            found.append(_wrap(tool, server, name))
    return found


def external_tools(settings: Settings | None = None, taken: set[str] | None = None) -> list[BaseTool]:
    """The tools of the servers in ``settings.mcp_servers`` (none when unset), listed once per file version."""
    settings = settings or get_settings()
    if not settings.mcp_servers:
        return []
    path = Path(settings.mcp_servers).expanduser()
    try:
        stat = path.stat()
        key: tuple = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(sorted(taken or ())))
    except OSError:
        key = (str(path),)
    with _CACHE_LOCK:
        if key in _CACHE:
            return list(_CACHE[key])
    tools = load_tools(read_servers(path), taken)
    with _CACHE_LOCK:
        _CACHE[key] = tools
    return list(tools)
