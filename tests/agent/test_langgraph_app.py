"""``langgraph.json`` names a graph factory that ``langgraph dev`` can serve: loaded here the way the file says."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

from langgraph.graph.state import CompiledStateGraph

ROOT = Path(__file__).resolve().parents[2]


def _load(spec: str):
    """What LangGraph's server does with ``"./path/to/file.py:attribute"``: import the file, take the attribute,
    and call it when it is a factory (with a config when it takes one)."""
    path, _, attribute = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("biomedgpt_langgraph_app", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    target = getattr(module, attribute)
    if isinstance(target, CompiledStateGraph):
        return target
    return target({"configurable": {}}) if inspect.signature(target).parameters else target()


def test_langgraph_json_serves_the_graph_without_our_checkpointer(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["dependencies"] == ["."]
    graph = _load(config["graphs"]["biomedgpt"])
    assert isinstance(graph, CompiledStateGraph)
    assert graph.checkpointer is None  # LangGraph's server brings its own
    assert {"plan", "tools", "answer"} <= set(graph.nodes)
    # the server shows the run-time context's schema; the live Services in it must not break that
    assert {"services", "max_steps"} <= set(graph.get_context_jsonschema()["properties"])
    out = graph.invoke({"messages": [{"role": "user", "content": "What is the molecular weight of CCO?"}]})
    assert "46.07" in out["messages"][-1].content and "[RDKit]" in out["messages"][-1].content
    assert out["properties"][0]["formula"] == "C2H6O"
    readme = (ROOT / "README.md").read_text()
    assert "langgraph dev" in readme and "pip install -e '.[langgraph]'" in readme
