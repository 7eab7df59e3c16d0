"""biomedgpt as an MCP server: ``biomedgpt mcp`` (stdio) or ``biomedgpt mcp --http [--host H] [--port P]``.

Built on the official ``mcp`` SDK's low-level ``Server``, so each tool keeps the pydantic input schema of its
LangChain twin (``tools/langchain_tools.py``) and declares an output schema generated from its record type.
The tools, under the LangChain tools' names:

- the ten look-ups and computations (``pubchem_lookup``, ``pubchem_similar``, ``uniprot_lookup``,
  ``uniprot_search``, ``literature_search``, ``pubmed_fetch``, ``molecule_properties``, ``similar_known``,
  ``describe_molecule``, ``describe_protein``): the text content is the records' ``chat_text()`` (what a chat
  model reads, with the bracketed labels to cite), the structured content is
  ``{"records": [record.model_dump()...], "citations": [{label, url}], ...}``;
- ``literature_ingest``: adds a document given as text (never a path on the server) to the literature store;
- ``ask``: the whole assistant (``Assistant().ask(question, session)``), structured as ``ask --json``.

The server builds one ``Services`` (``tools/services.py``) from the settings it starts with and hands it to every
call explicitly: the direct tools, ``literature_ingest`` and the ``Assistant`` behind ``ask`` share one set of
HTTP sessions and one literature store (what ``literature_ingest`` adds, ``literature_search`` finds).

A failing call is an MCP tool error (``isError``) whose text is the one-line message the CLI would print
(bad arguments included: pydantic's reasons on one line). Tools run in worker threads; a request the client
cancels sets the stop event of its work (``core/cancel.py``). Progress messages of the tools (``PubChem busy,
retrying in 2 s``) go to the client as MCP log messages.

Why the low-level server and not FastMCP: FastMCP derives schemas from function signatures; here the schemas
already exist (and are what the agent's chat models see), so the server lists them as they are.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
from collections.abc import Callable
from functools import partial
from io import TextIOWrapper
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import NotificationOptions, Server
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from biomedgpt.core.cancel import Cancelled, cancel_scope
from biomedgpt.core.errors import BiomedGPTError, InputError
from biomedgpt.tools.langchain_tools import TOOL_RECORDS, TOOLS_BY_NAME, records_of
from biomedgpt.tools.progress import listen
from biomedgpt.tools.services import Services

log = logging.getLogger(__name__)

SERVER_NAME = "biomedgpt"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
HTTP_PATH = "/mcp"
INGEST_TOOL = "literature_ingest"
ASK_TOOL = "ask"
#: Longest error message sent back (a 10 kB input is never echoed whole).
MAX_ERROR_CHARS = 1000

INSTRUCTIONS = (
    "biomedgpt: biomedical look-ups with citations. Each tool result carries bracketed source labels "
    "([PubChem CID n], [UniProt ACCESSION], [PMID n], [RDKit], [BioMedGPT], [Doc NAME]); cite them after every "
    "claim. [BioMedGPT] text is model output, never a database fact. `ask` runs the whole assistant and returns "
    "a cited answer; the other tools return typed records."
)


# ----------------------------------------------------------------------------- schemas


class Citation(BaseModel):
    """A source to cite: its bracketed label and a link (empty when there is none)."""

    label: str
    url: str = ""


class LiteratureIngestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2_000_000,
                      description="The document's text (an abstract, notes, a paper's body). Text only: this tool "
                                  "never reads a file on the server.")
    title: str | None = Field(None, max_length=1000, description="The document's title.")
    name: str | None = Field(None, max_length=200, pattern=r"^[^/\\\[\];]+$",
                             description="A short name to cite it by, [Doc NAME] (default: the title). "
                                         "Ignored when pmid is given.")
    pmid: str | None = Field(None, pattern=r"^\d{1,9}$",
                             description="The PubMed id, when the text is a PubMed record: it is cited as [PMID n].")
    year: int | None = Field(None, ge=1500, le=2200, description="Publication year.")


class AskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=100_000,
                          description="A question about molecules, proteins or the literature, e.g. "
                                      "'What is the molecular weight of aspirin?'.")
    session: str | None = Field(None, max_length=200,
                                description="A session name: follow-up questions in the same session remember "
                                            "the conversation (shared with `biomedgpt chat --session`).")


class IngestOutput(BaseModel):
    citation: Citation
    records: int
    chunks_added: int
    chunks_skipped: int


class AskOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    answer: str
    citations: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    artifacts: dict[str, list[dict[str, Any]]]
    session: str | None = None


def _output_model(name: str) -> type[BaseModel]:
    record = TOOL_RECORDS.get(name)
    fields: dict[str, Any] = {
        "records": (list[record] if record is not None else list[dict[str, Any]],
                    Field(description="the typed records the tool returned (model_dump())")),
        "citations": (list[Citation], Field(description="the labels to cite, with links")),
    }
    if name == "literature_search":
        fields["searched"] = (int, Field(description="chunks in the store that were searched"))
    if name == "pubmed_fetch":
        fields["report"] = (dict[str, Any], Field(description="what was fetched and stored"))
    title = "".join(part.capitalize() for part in name.split("_")) + "Output"
    return create_model(title, __config__=ConfigDict(extra="allow"), **fields)


def _schema(model: type[BaseModel], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
    schema.setdefault("type", "object")
    return schema


# ----------------------------------------------------------------------------- running a tool


def one_line(error: BaseException) -> str:
    """The message of a failed call: one line, at most ``MAX_ERROR_CHARS``."""
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                             for e in error.errors(include_url=False))
        text = f"invalid arguments: {problems}"
    elif isinstance(error, BiomedGPTError):
        text = str(error)
    elif isinstance(error, Cancelled):
        text = "cancelled"
    else:
        text = f"{type(error).__name__}: {error}"
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _citations(records: list[BaseModel]) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    # a model answer cites its evidence (the nearest known references) before its own label
    records = [part for record in records for part in [*getattr(record, "evidence", []), record]]
    for record in records:
        label = str(getattr(record, "label", "") or "")
        url = getattr(record, "link", None) or getattr(record, "url", "") or ""
        if label and label not in seen:
            seen[label] = {"label": label, "url": str(url)}
    return list(seen.values())


def run_tool(name: str, arguments: dict[str, Any], services: Services | None = None) -> tuple[str, dict[str, Any]]:
    """Run one of the ten biomedgpt tools with ``services`` (default: the process-wide ones): ``(text, structured
    content)``; raises on failure."""
    tool = TOOLS_BY_NAME[name]
    schema = tool.args_schema
    parsed = schema.model_validate(arguments)  # type: ignore[union-attr]
    text, artifact = tool.func(**parsed.model_dump(exclude_unset=True), services=services)  # type: ignore[misc]
    records = records_of(name, artifact)
    structured: dict[str, Any] = {"records": [r.model_dump(mode="json") for r in records],
                                  "citations": _citations(records)}
    if isinstance(artifact, dict) and "searched" in artifact:
        structured["searched"] = int(artifact["searched"])
    if name == "pubmed_fetch":
        structured["report"] = dict(artifact or {})
    return str(text), structured


def ingest_text(arguments: dict[str, Any], services: Services | None = None) -> tuple[str, dict[str, Any]]:
    """``literature_ingest``: chunk, embed and store one document given as text, in ``services``' literature store
    (the one ``literature_search`` reads with the same services; default: the process-wide ones)."""
    from biomedgpt.tools.literature import document_from_record
    from biomedgpt.tools.records import Passage
    from biomedgpt.tools.services import default_services

    parsed = LiteratureIngestInput.model_validate(arguments)
    name = parsed.name or (parsed.title or "").strip()[:80] or "document"
    try:
        document = document_from_record({"pmid": parsed.pmid, "title": parsed.title, "abstract": parsed.text,
                                         "year": parsed.year}, source=name)
    except ValueError as error:
        raise InputError(f"cannot ingest this document: {error}") from None
    report = (services or default_services()).literature.ingest_documents([document])
    label = Passage(text="", pmid=document.pmid, source=name, title=parsed.title).label
    url = f"https://pubmed.ncbi.nlm.nih.gov/{document.pmid}/" if document.pmid else ""
    text = (f"Ingested {label!r} into the literature store: {report.chunks_added} new chunk(s), "
            f"{report.chunks_skipped} already stored. Find it with literature_search; cite it as [{label}].")
    return text, {"citation": {"label": label, "url": url}, "records": report.records,
                  "chunks_added": report.chunks_added, "chunks_skipped": report.chunks_skipped}


class _Asker:
    """One ``Assistant`` for the server's lifetime, on the server's ``Services`` (sessions are shared with the CLI
    through BIOMEDGPT_HOME)."""

    def __init__(self, services: Services | None = None) -> None:
        self._services = services
        self._assistant: Any = None
        self._lock = threading.Lock()

    def __call__(self, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        parsed = AskInput.model_validate(arguments)
        with self._lock:
            if self._assistant is None:
                from biomedgpt.agent.assistant import Assistant

                self._assistant = Assistant(services=self._services)
        result = self._assistant.ask(parsed.question, session=parsed.session)
        lines = [result.answer or "(no answer)"]
        if result.citations:
            lines += ["", "Sources:"]
            lines += [f"[{c['label']}] {c.get('title') or ''} {c.get('url') or ''}".rstrip() for c in result.citations]
        return "\n".join(lines), {**result.to_dict(), "session": parsed.session}


# ----------------------------------------------------------------------------- the server


def tool_list() -> list[types.Tool]:
    """The tools the server offers, with input and output schemas."""
    listed = []
    for name, tool in TOOLS_BY_NAME.items():
        listed.append(types.Tool(name=name, description=tool.description,
                                 inputSchema=_schema(tool.args_schema, "validation"),  # type: ignore[arg-type]
                                 outputSchema=_schema(_output_model(name), "serialization")))
    listed.append(types.Tool(
        name=INGEST_TOOL,
        description="Add a document, given as text, to the local literature store (chunked and embedded) so that "
                    "literature_search finds it and answers cite it as [Doc NAME] or [PMID n]. Takes text only, "
                    "never a file path.",
        inputSchema=_schema(LiteratureIngestInput, "validation"),
        outputSchema=_schema(IngestOutput, "serialization")))
    listed.append(types.Tool(
        name=ASK_TOOL,
        description="Ask the whole biomedgpt assistant a question (molecules, proteins, literature); it plans the "
                    "look-ups, calls the tools and answers with every fact cited. Give a session name to ask "
                    "follow-ups ('what is its logP?').",
        inputSchema=_schema(AskInput, "validation"),
        outputSchema=_schema(AskOutput, "serialization")))
    return listed


def _handlers(services: Services) -> dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]]:
    handlers: dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]] = {
        name: partial(run_tool, name, services=services) for name in TOOLS_BY_NAME}
    handlers[INGEST_TOOL] = partial(ingest_text, services=services)
    handlers[ASK_TOOL] = _Asker(services)
    return handlers


def build_server(services: Services | None = None) -> Server:
    """The MCP server (transport-independent); every call uses ``services`` (default: built from the process-wide
    settings now)."""
    server: Server = Server(SERVER_NAME, version=_version(), instructions=INSTRUCTIONS)
    tools = tool_list()
    handlers = _handlers(services or Services())

    @server.list_tools()
    async def _list_tools() -> list[types.Tool]:
        return tools

    @server.set_logging_level()
    async def _set_level(level: types.LoggingLevel) -> None:
        return None

    @server.call_tool(validate_input=False)  # pydantic validates, with one-line reasons
    async def _call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        handler = handlers.get(name)
        if handler is None:
            return _error(f"unknown tool {name!r}; known tools: {', '.join(handlers)}")
        session = server.request_context.session
        request_id = server.request_context.request_id
        try:
            text, structured = await _in_thread(handler, arguments or {}, session, request_id)
        except Exception as error:  # noqa: BLE001 - every failure is a tool error with its one-line message
            log.debug("tool %s failed", name, exc_info=True)
            return _error(one_line(error))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    structuredContent=structured, isError=False)

    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("biomedgpt")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
        return "0"


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], isError=True)


async def _in_thread(handler: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]], arguments: dict[str, Any],
                     session: Any, request_id: Any) -> tuple[str, dict[str, Any]]:
    """Run ``handler`` in a worker thread under its own stop event (set when the client cancels the request);
    its progress messages go to the client as log messages."""
    event = threading.Event()
    context = contextvars.copy_context()

    def forward(message: str) -> None:
        try:
            anyio.from_thread.run(partial(session.send_log_message, "info", str(message), logger=SERVER_NAME,
                                          related_request_id=request_id))
        except Exception:  # noqa: BLE001 - a lost log line never fails the call
            log.debug("could not forward %r", message, exc_info=True)

    def work() -> tuple[str, dict[str, Any]]:
        with cancel_scope(event), listen(forward):
            try:
                return handler(arguments)
            except Cancelled:
                raise BiomedGPTError("cancelled") from None

    try:
        return await anyio.to_thread.run_sync(context.run, work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        event.set()
        raise


# ----------------------------------------------------------------------------- transports


def _protocol_stdout() -> TextIOWrapper:
    """A private handle on the real stdout for the protocol; fd 1 and ``sys.stdout`` then point at stderr, so a
    stray ``print`` (or a C library) can never corrupt the JSON-RPC stream."""
    sys.stdout.flush()
    handle = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return TextIOWrapper(handle, encoding="utf-8", write_through=True)


async def serve_stdio() -> None:
    from mcp.server.stdio import stdio_server

    server = build_server()
    out = anyio.wrap_file(_protocol_stdout())
    async with stdio_server(stdout=out) as (read_stream, write_stream):
        await server.run(read_stream, write_stream,
                         server.create_initialization_options(notification_options=NotificationOptions()))


def http_app(host: str = DEFAULT_HOST) -> Any:
    """The Starlette app serving MCP's streamable HTTP transport at ``/mcp``."""
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Route

    security = None
    if host in ("127.0.0.1", "localhost", "::1"):  # DNS-rebinding protection for a loopback server (as FastMCP)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
    manager = StreamableHTTPSessionManager(app=build_server(), security_settings=security)

    class _Endpoint:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await manager.handle_request(scope, receive, send)

    return Starlette(routes=[Route(HTTP_PATH, endpoint=_Endpoint())], lifespan=lambda app: manager.run())


async def serve_http(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    import uvicorn

    config = uvicorn.Config(http_app(host), host=host, port=port, log_level="warning", lifespan="on")
    await uvicorn.Server(config).serve()


class _ClientGone(logging.Filter):
    """The SDK logs a traceback when an HTTP client closes its event stream at the end of a session: not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "standalone SSE writer" not in record.getMessage()


def serve(http: bool = False, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Run the server until the client disconnects (stdio) or Ctrl-C (HTTP)."""
    from biomedgpt.core.terminal import quiet_libraries

    quiet_libraries()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="biomedgpt mcp: %(message)s")
    logging.getLogger("mcp.server.streamable_http").addFilter(_ClientGone())
    if http:
        anyio.run(serve_http, host, port)
    else:
        anyio.run(serve_stdio)
