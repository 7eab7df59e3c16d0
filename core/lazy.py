"""Lazy module attributes (PEP 562): ``__getattr__ = lazy_attributes(__name__, {"Name": ("pkg.module", "Name")})``.

Why: ``import biomedgpt`` and ``import biomedgpt.model`` must not pay for torch, transformers or langgraph
until a name that needs them is used; both packages resolve their public names the same way, here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(module: str, table: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name] = (module, attribute)`` on first use and keeps it."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook's own name
        if name in table:
            module_name, attribute = table[name]
            value = getattr(importlib.import_module(module_name), attribute)
            setattr(sys.modules[module], name, value)
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
