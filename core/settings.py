"""Typed settings for every part of biomedgpt: ``from biomedgpt.core.settings import get_settings``.

Why one object: users configure base URLs, timeouts, rate limits and cache TTLs in one place
(``BIOMEDGPT_*`` variables or a TOML file), and tests point everything at loopback servers and a
temporary ``BIOMEDGPT_HOME`` by setting environment variables only.

This module is a leaf: it imports nothing from the rest of the package, so ``model/``, ``tools/``,
``training/`` and ``agent/`` may all read it without breaking the one-way import rule.

Precedence (highest first): keyword arguments, ``BIOMEDGPT_*`` environment variables, the TOML file
(``BIOMEDGPT_CONFIG`` or ``~/.config/biomedgpt/config.toml``), the defaults below.
Nested tables use ``__`` in variable names, e.g. ``BIOMEDGPT_HTTP__READ_TIMEOUT=2``.

``use_settings(settings)`` scopes another object to a block (a ``ContextVar``, so it follows the
threads LangGraph and LangChain start with a copied context): ``Assistant(settings=...)`` runs its
graph inside it, so the tools it calls read that object, not the process-wide one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def config_file_path() -> Path:
    """The TOML file that settings are read from (it need not exist)."""
    explicit = os.environ.get("BIOMEDGPT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path("~/.config/biomedgpt/config.toml").expanduser()


class HttpSettings(BaseModel):
    """Network behaviour shared by the PubChem, UniProt and E-utilities clients."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0  # PubChem itself cuts a call at 30 s
    max_retries: int = 4
    backoff_factor: float = 0.5  # seconds; doubled on each retry, plus jitter
    backoff_jitter: float = 0.25
    backoff_max: float = 30.0  # the stated maximum wait between two tries
    pubchem_per_second: int = 5  # PubChem's documented policy
    pubchem_per_minute: int = 400
    uniprot_per_second: int = 5  # a polite default; UniProt documents no hard limit
    eutils_per_second: int = 3  # NCBI's limit without an API key
    pubchem_cache_ttl: int = 7 * 24 * 3600  # seconds
    uniprot_cache_ttl: int = 7 * 24 * 3600
    eutils_cache_ttl: int = 24 * 3600
    user_agent: str = "biomedgpt/0.1 (+https://github.com/biomedgpt/biomedgpt)"


class Settings(BaseSettings):
    """Everything a user can configure. Field names map to ``BIOMEDGPT_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="BIOMEDGPT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(default=Path("~/.cache/biomedgpt"), description="caches, weights, Chroma, sessions")
    offline: bool = False
    pubchem_url: str = "https://pubchem.ncbi.nlm.nih.gov"
    uniprot_url: str = "https://rest.uniprot.org"
    eutils_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    llm: str = "offline"
    chroma_url: str | None = None
    embedding_model: str | None = None
    model: str = "mini"
    device: str = "auto"
    ncbi_api_key: SecretStr | None = None
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("home", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("pubchem_url", "uniprot_url", "eutils_url", mode="after")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())
        return (init_settings, env_settings, toml)

    def path(self, *parts: str) -> Path:
        """A path under ``home``; creates the parent folders. Nothing is written outside home."""
        target = self.home.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return Settings()


_ACTIVE: ContextVar[Settings | None] = ContextVar("biomedgpt_settings", default=None)


def get_settings(**overrides: Any) -> Settings:
    """The settings in force: those of an enclosing ``use_settings`` block, else the process-wide
    ones; with overrides, a fresh object (nothing cached)."""
    if overrides:
        return Settings(**overrides)
    active = _ACTIVE.get()
    return active if active is not None else _cached()


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Make ``get_settings()`` return ``settings`` inside the block (and in work it hands to threads
    with a copied context); the previous value comes back afterwards."""
    previous = _ACTIVE.get()
    _ACTIVE.set(settings)
    try:
        yield settings
    finally:
        _ACTIVE.set(previous)


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    _cached.cache_clear()
