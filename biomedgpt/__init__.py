"""biomedgpt: ``from biomedgpt import Assistant, load_model, Settings``.

The public API is loaded lazily (PEP 562) so that ``import biomedgpt`` and the CLI's ``--help``
do not pay for torch, transformers or langgraph until they are used.
"""

from __future__ import annotations

from typing import Any

from biomedgpt.core.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "Settings": ("biomedgpt.core.settings", "Settings"),
    "get_settings": ("biomedgpt.core.settings", "get_settings"),
    "BiomedGPTError": ("biomedgpt.core.errors", "BiomedGPTError"),
    "load_model": ("biomedgpt.model", "load_model"),
    "load_official": ("biomedgpt.model", "load_official"),
    "featurize_smiles": ("biomedgpt.model", "featurize_smiles"),
    "Assistant": ("biomedgpt.agent.assistant", "Assistant"),
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_attributes(__name__, _LAZY)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext biomedgpt`` registers the ``%biomed`` / ``%%biomed`` magics."""
    from biomedgpt.agent.jupyter import load_ipython_extension as _load

    _load(ipython)
