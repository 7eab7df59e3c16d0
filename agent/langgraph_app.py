"""The assistant's graph for LangGraph's own server: ``langgraph dev`` (``langgraph.json`` names ``make_graph``).

``pip install -e '.[langgraph]'`` adds ``langgraph-cli[inmem]``; then ``langgraph dev`` in the repository root
serves the graph with LangGraph Studio and the LangGraph API. The server brings its own checkpointer (threads
are its sessions), so the factory compiles the graph without biomedgpt's SQLite one. The tools are biomedgpt's
plus those of the MCP servers in ``BIOMEDGPT_MCP_SERVERS``; questions are planned by the router (the graph's
default context: no chat model), exactly as ``biomedgpt ask`` does with ``BIOMEDGPT_LLM=none``. A run's context
carries no ``Services`` (they are live objects, not JSON), so the tools use the default ``Services`` of the
server's process-wide settings (``BIOMEDGPT_*``; ``tools/services.default_services``).

Input: ``{"messages": [{"role": "user", "content": "What is the molecular weight of aspirin?"}]}``; the last
message of the output is the cited answer, and the records sit in the state's lists (``compounds``,
``properties``, ``proteins``, ``passages``, ``similar``, ``model_answers``).
"""

from __future__ import annotations

from typing import Any

from biomedgpt.agent.graph import build_graph
from biomedgpt.agent.mcp_client import external_tools
from biomedgpt.core.settings import get_settings
from biomedgpt.tools.langchain_tools import TOOL_NAMES, all_tools


def make_graph(config: Any = None) -> Any:
    """The compiled graph, without a checkpointer (LangGraph's server supplies one)."""
    settings = get_settings()
    tools = all_tools() + external_tools(settings, taken=set(TOOL_NAMES))
    return build_graph(tools, checkpointer=None)
