"""The error types of biomedgpt: ``except BiomedGPTError`` catches every expected failure.

Why here: ``core/`` is the ground floor of the import graph, so every room (model, tools, training,
agent, CLI) can subclass these without breaking the one-way import rule. The CLI prints ``str(error)`` of a
``BiomedGPTError`` as one line; anything else is a bug and is reported as one.
"""

from __future__ import annotations


class BiomedGPTError(Exception):
    """Base class: a failure whose message is written for the user."""


class InputError(BiomedGPTError, ValueError):
    """The user's input is wrong (SMILES, sequence, accession, file); the message names it."""


class InvalidSmilesError(InputError):
    """RDKit could not parse a SMILES string."""


class InvalidSequenceError(InputError):
    """A protein sequence holds a letter that is not an amino acid, or is too long."""


class CheckpointError(BiomedGPTError):
    """A checkpoint is missing, corrupt, or its keys do not match the model."""


class ConfigError(BiomedGPTError, ValueError):
    """A configuration value or preset name is wrong."""


def shorten(value: object, limit: int = 80) -> str:
    """``repr`` of a user input for an error message, cut at ``limit`` characters (a 10 kB input is not echoed)."""
    text = value if isinstance(value, str) else str(value)
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"… ({len(text):,} characters)"
