"""MCP both ways: ``biomedgpt mcp`` over stdio and streamable HTTP (the mcp SDK's own client lists the tools and
calls them), and the tools of an external MCP server (BIOMEDGPT_MCP_SERVERS) called by the agent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client

from biomedgpt.agent.assistant import Assistant
from biomedgpt.agent.mcp_client import McpError, external_tools, read_servers
from biomedgpt.core.errors import ConfigError
from biomedgpt.core.settings import Settings
from biomedgpt.tools.langchain_tools import TOOL_NAMES
from tests.agent.helpers import call, fake_llm

BIN = Path(sys.executable).with_name("biomedgpt")
ETHANOL = "CCO"


def _env() -> dict[str, str]:
    return {**os.environ, "BIOMEDGPT_OFFLINE": "1", "BIOMEDGPT_MODEL": "tiny", "OMP_NUM_THREADS": "1"}


async def _exercise(session: ClientSession, *, everything: bool) -> None:
    await session.initialize()
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(TOOL_NAMES) | {"literature_ingest", "ask"} == set(listed)
    # each tool keeps its LangChain twin's input schema, and declares its output
    assert listed["molecule_properties"].inputSchema["required"] == ["smiles"]
    assert listed["literature_search"].inputSchema["properties"]["k"]["maximum"] == 50
    assert "records" in listed["molecule_properties"].outputSchema["properties"]

    props = await session.call_tool("molecule_properties", {"smiles": ETHANOL})
    assert not props.isError
    record = props.structuredContent["records"][0]
    assert record["formula"] == "C2H6O" and record["heavy_atoms"] == 3 and record["lipinski_pass"] is True
    assert props.structuredContent["citations"] == [{"label": "RDKit", "url": "https://www.rdkit.org"}]
    assert "[RDKit]" in props.content[0].text and "formula C2H6O" in props.content[0].text  # chat_text()

    found = await session.call_tool("literature_search", {"query": "BRCA1 mutations in breast cancer", "k": 3})
    assert not found.isError
    passages = found.structuredContent["records"]
    assert len(passages) == 3 and all(p["pmid"] and p["text"] for p in passages)
    assert found.structuredContent["searched"] > 0
    labels = [c["label"] for c in found.structuredContent["citations"]]
    assert all(label.startswith("PMID ") for label in labels)
    assert f"[{labels[0]}]" in found.content[0].text
    if not everything:
        return

    bad = await session.call_tool("similar_known", {"k": 3})  # neither smiles nor sequence
    assert bad.isError and bad.structuredContent is None
    assert "\n" not in bad.content[0].text and "exactly one of 'smiles'" in bad.content[0].text
    wrong = await session.call_tool("literature_search", {"query": "x", "k": 500})
    assert wrong.isError and wrong.content[0].text.startswith("invalid arguments: k:")

    added = await session.call_tool("literature_ingest", {
        "text": "Axolotl limbs regenerate through a blastema that depends on nerve-derived signals.",
        "title": "Limb regeneration in axolotls", "name": "axolotl-notes.md"})
    assert not added.isError and added.structuredContent["citation"]["label"] == "Doc axolotl-notes.md"
    again = await session.call_tool("literature_search", {"query": "axolotl limb regeneration blastema", "k": 1})
    assert again.structuredContent["citations"][0]["label"] == "Doc axolotl-notes.md"
    path = await session.call_tool("literature_ingest", {"path": "/etc/passwd"})  # text only, never a path
    assert path.isError and "text" in path.content[0].text

    answer = await session.call_tool("ask", {"question": f"What is the molecular weight of {ETHANOL}?"})
    assert not answer.isError
    assert "46.07" in answer.structuredContent["answer"] and "[RDKit]" in answer.content[0].text
    assert answer.structuredContent["tool_calls"][0]["name"] == "molecule_properties"


@pytest.mark.slow
def test_mcp_server_over_stdio():
    params = StdioServerParameters(command=str(BIN), args=["mcp"], env=_env())

    async def main() -> None:
        with anyio.fail_after(300):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await _exercise(session, everything=True)

    anyio.run(main)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_mcp_server_over_streamable_http():
    port = _free_port()
    server = subprocess.Popen([str(BIN), "mcp", "--http", "--port", str(port)], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.1)

        async def main() -> None:
            with anyio.fail_after(300):
                async with streamablehttp_client(f"http://127.0.0.1:{port}/mcp") as (read, write, _), \
                        ClientSession(read, write) as session:
                    await _exercise(session, everything=False)

        anyio.run(main)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


# ----------------------------------------------------------------------------- MCP tools in

TINY_SERVER = textwrap.dedent('''
    from mcp.server.fastmcp import FastMCP

    server = FastMCP("tiny")

    @server.tool()
    def reverse_text(text: str) -> str:
        """Reverse a piece of text."""
        return text[::-1]

    @server.tool()
    def molecule_properties(smiles: str) -> str:
        """A tool whose name biomedgpt already uses."""
        return "not biomedgpt's"

    @server.tool()
    def always_fails(reason: str) -> str:
        """Fails."""
        raise ValueError(f"failed on purpose: {reason}")

    if __name__ == "__main__":
        server.run()
''')


@pytest.fixture
def servers_file(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "tiny_server.py"
    script.write_text(TINY_SERVER)
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {
        "tiny": {"command": sys.executable, "args": [str(script)], "env": {"TINY": "1"}},
        "off": {"command": "does-not-exist", "disabled": True}}}))
    monkeypatch.setenv("BIOMEDGPT_MCP_SERVERS", str(path))
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    return path


@pytest.mark.slow
def test_agent_calls_a_tool_of_an_external_mcp_server(servers_file, monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_TOOL_CHOICE", "model")  # the chat model picks its tools
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("reverse_text", "c1", text="lonahte")]),
        AIMessage(content="", tool_calls=[call("always_fails", "c2", reason="test")]),
        AIMessage(content="Reversed, it reads ethanol."),
    ])
    assistant = Assistant(llm=llm)
    names = [tool.name for tool in assistant.tools()]
    assert names[:len(TOOL_NAMES)] == list(TOOL_NAMES)
    assert {"reverse_text", "always_fails", "tiny_molecule_properties"} <= set(names)  # a taken name gets a prefix
    result = assistant.ask(f"What is the molecular weight of {ETHANOL}?")
    assert "reverse_text" in llm.bound  # offered to the chat model
    assert [(c["name"], c["ok"]) for c in result.tool_calls] == [("reverse_text", True), ("always_fails", False)]
    assert "MCP server 'tiny'" in result.tool_calls[1]["error"] and "failed on purpose: test" in \
        result.tool_calls[1]["error"]
    reverse = next(tool for tool in assistant.tools() if tool.name == "reverse_text")
    reply = reverse.invoke({"name": "reverse_text", "args": {"text": "lonahte"}, "id": "c9", "type": "tool_call"})
    assert isinstance(reply, ToolMessage) and reply.content == "ethanol"  # what the chat model reads


@pytest.mark.slow
def test_the_router_never_plans_external_tools(servers_file):
    result = Assistant().ask(f"What is the molecular weight of {ETHANOL}?")  # no chat model: the router plans
    assert [c["name"] for c in result.tool_calls] == ["molecule_properties"] and "46.07" in result.answer


def test_servers_file_errors_name_the_file_and_the_entry(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        read_servers(bad)
    bad.write_text(json.dumps({"servers": {}}))
    with pytest.raises(ConfigError, match="mcpServers"):
        read_servers(bad)
    bad.write_text(json.dumps({"mcpServers": {"x": {"args": ["a"]}}}))
    with pytest.raises(ConfigError, match="server 'x' needs a \"command\" .* or a \"url\""):
        read_servers(bad)
    bad.write_text(json.dumps({"mcpServers": {"x": {"type": "stdio", "args": ["a"]}}}))
    with pytest.raises(ConfigError, match="server 'x' needs a \"command\""):
        read_servers(bad)
    bad.write_text(json.dumps({"mcpServers": {"web": {"type": "http", "url": "ftp://x"}}}))
    with pytest.raises(ConfigError, match="server 'web' needs an http"):
        read_servers(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mcpServers": {
        "a": {"command": "uvx", "args": ["mcp-server-fetch"]},
        "b": {"url": "http://127.0.0.1:9/mcp", "headers": {"X": "1"}},
        "c": {"type": "sse", "url": "http://127.0.0.1:9/sse"}}}))
    assert read_servers(good) == {
        "a": {"transport": "stdio", "command": "uvx", "args": ["mcp-server-fetch"], "env": None},
        "b": {"transport": "streamable_http", "url": "http://127.0.0.1:9/mcp", "headers": {"X": "1"}},
        "c": {"transport": "sse", "url": "http://127.0.0.1:9/sse"}}
    with pytest.raises(ConfigError, match="does not exist"):
        external_tools(Settings(mcp_servers=str(tmp_path / "missing.json")))
    assert external_tools(Settings()) == []
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({"mcpServers": {"gone": {"command": str(tmp_path / "no-such-program")}}}))
    with pytest.raises(McpError, match="MCP server 'gone' could not be reached"):
        external_tools(Settings(mcp_servers=str(gone)))
