"""The one-way rooms, read from the source (AST), so that no room can import upwards unnoticed.

The five room folders install under ``biomedgpt.*`` through a setuptools ``package-dir`` mapping
(``core/`` is ``biomedgpt.core``, …), which import-linter's graph builder does not follow from the
source tree; this test parses every module itself instead.

- ``core`` imports nothing of the project; ``model`` imports ``core``; ``tools`` imports ``model`` and
  ``core``; ``training`` imports ``model`` and ``core``; ``agent`` imports ``tools``, ``model`` and ``core``.
- No room imports the front door: ``biomedgpt.cli``, ``biomedgpt.commands``, ``biomedgpt.fixtureserver``
  or the lazy re-exports of ``biomedgpt/__init__.py`` (``from biomedgpt import Settings``).
- Imports inside functions count for the rooms (a deferral is still a dependency), and so do
  ``importlib.import_module("biomedgpt.…")`` calls with a literal name.
- No import cycle between modules through module-level imports (those that run when a module is
  imported; ``if TYPE_CHECKING:`` blocks do not run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# folder in the repository → the package it installs as
FOLDERS = {
    "core": "biomedgpt.core",
    "model": "biomedgpt.model",
    "tools": "biomedgpt.tools",
    "training": "biomedgpt.training",
    "agent": "biomedgpt.agent",
    "biomedgpt": "biomedgpt",
}
ROOMS = ("core", "model", "tools", "training", "agent")
# room → the rooms it may import (besides itself)
ALLOWED = {
    "core": set(),
    "model": {"core"},
    "tools": {"model", "core"},
    "training": {"model", "core"},
    "agent": {"tools", "model", "core"},
}
FRONT_DOOR = "front door"


@dataclass(frozen=True)
class Import:
    module: str  # importing module, dotted
    path: Path
    line: int
    target: str  # imported module, dotted (resolved; a name imported from a package is tried as a submodule)
    module_level: bool


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if any(part.startswith(".") or part == "__pycache__" for part in parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = _modules()


def _is_package(module: str) -> bool:
    return MODULES.get(module, Path()).name == "__init__.py"


def _resolve_relative(module: str, level: int, name: str | None) -> str:
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(module: str, node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = _resolve_relative(module, node.level, node.module) if node.level else (node.module or "")
        targets = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            # ``from biomedgpt.tools import http`` imports the submodule; ``from x import name`` the package
            targets.append(sub if sub in MODULES else base)
        return targets
    if isinstance(node, ast.Call):  # importlib.import_module("biomedgpt.…")
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _walk(module: str, path: Path, node: ast.AST, module_level: bool, out: list[Import]) -> None:
    for child in ast.iter_child_nodes(node):
        level = module_level and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            level = False
        for target in _targets(module, child):
            if target == "biomedgpt" or target.startswith("biomedgpt."):
                out.append(Import(module, path, child.lineno, target, level))
        _walk(module, path, child, level, out)


def _imports() -> list[Import]:
    out: list[Import] = []
    for module, path in MODULES.items():
        _walk(module, path, ast.parse(path.read_text(), filename=str(path)), True, out)
    return out


IMPORTS = _imports()


def _room(module: str) -> str:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "biomedgpt" and parts[1] in ROOMS:
        return parts[1]
    return FRONT_DOOR  # biomedgpt itself (the lazy re-exports), cli, commands, fixtureserver


def _where(item: Import) -> str:
    return f"{item.path.relative_to(REPO)}:{item.line}"


def test_every_room_and_the_front_door_is_scanned():
    rooms = {_room(module) for module in MODULES}
    assert rooms == {*ROOMS, FRONT_DOOR}
    assert "biomedgpt.cli" in MODULES and "biomedgpt.core.errors" in MODULES
    assert len(IMPORTS) > 100  # the parser found the project's imports at all


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_downwards_only(room):
    upward = []
    for item in IMPORTS:
        if _room(item.module) != room:
            continue
        target_room = _room(item.target)
        if target_room != room and target_room not in ALLOWED[room]:
            upward.append(f"{_where(item)}: {item.module} imports {item.target} ({target_room})")
    allowed = ", ".join(sorted(ALLOWED[room])) or "nothing of the project"
    assert not upward, f"{room}/ may import {allowed}; found:\n" + "\n".join(upward)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles_at_module_level():
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for item in IMPORTS:
        if item.module_level and item.target in MODULES and item.target != item.module:
            edges[item.module].add(item.target)
    cycles = _cycles(edges)
    assert not cycles, "module-level import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_the_checker_sees_upward_and_deferred_imports(tmp_path):
    """The scanner itself: a deferred upward import, a relative one and an import_module are all seen."""
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from biomedgpt.agent.state import X\n"
        "def f():\n"
        "    from biomedgpt.tools import http\n"
        "    import importlib\n"
        "    importlib.import_module('biomedgpt.cli')\n"
        "from ..core import errors\n"
        "from biomedgpt import Settings\n"
    )
    out: list[Import] = []
    _walk("biomedgpt.model.example", tmp_path / "example.py", ast.parse(source), True, out)
    seen = {(i.target, i.module_level) for i in out}
    assert ("biomedgpt.agent.state", False) in seen
    assert ("biomedgpt.tools.http", False) in seen
    assert ("biomedgpt.cli", False) in seen
    assert ("biomedgpt.core.errors", True) in seen
    assert ("biomedgpt", True) in seen and _room("biomedgpt") == FRONT_DOOR
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
