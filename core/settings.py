"""Typed settings for every part of biomedgpt: ``from biomedgpt.core.settings import get_settings``.

Why one object: users configure base URLs, timeouts, rate limits and cache TTLs in one place
(``BIOMEDGPT_*`` variables or a TOML file), and tests point everything at loopback servers and a
temporary ``BIOMEDGPT_HOME`` by setting environment variables only.

This module imports only ``core.errors`` from the rest of the package, so ``model/``, ``tools/``,
``training/`` and ``agent/`` may all read it without breaking the one-way import rule.

A wrong value is a ``ConfigError`` naming where it came from and the field: the variable
(``BIOMEDGPT_HTTP__READ_TIMEOUT (http.read_timeout): Input should be a valid number (got 'abc')``) or the
TOML file and its key (``config.toml: [http] max_retries``); a TOML syntax error names the file and line.

Precedence (highest first): keyword arguments, ``BIOMEDGPT_*`` environment variables, the TOML file
(``BIOMEDGPT_CONFIG`` or ``~/.config/biomedgpt/config.toml``), the defaults below.
Nested tables use ``__`` in variable names, e.g. ``BIOMEDGPT_HTTP__READ_TIMEOUT=2``.

Per-run settings are explicit, never ambient: ``Assistant(settings=...)`` builds one ``Services``
(``tools/services.py``: the HTTP sessions, the clients, the literature store) from them and hands it to its
tools through LangGraph's run-time context, so two assistants with different settings in one process never
see each other's. ``get_settings()`` is only the process-wide default, what code that is handed nothing uses;
``use_settings(settings)`` swaps that default for a block (scripts, notebooks, tests), and with it the
default ``Services``.

``resolve_device`` is the one meaning of ``device``: ``auto`` is CUDA when torch sees a GPU, else the CPU,
for every model of the project (the BioMedGPT model, the embedding model, local chat models).
"""

from __future__ import annotations

import os
import tomllib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from biomedgpt.core.errors import ConfigError


def config_file_path() -> Path:
    """The TOML file that settings are read from (it need not exist)."""
    explicit = os.environ.get("BIOMEDGPT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path("~/.config/biomedgpt/config.toml").expanduser()


class HttpSettings(BaseModel):
    """Network behaviour shared by the PubChem, UniProt and E-utilities clients (``[http]`` table, ``BIOMEDGPT_HTTP__*``)."""

    connect_timeout: float = Field(5.0, description="seconds to open a connection")
    read_timeout: float = Field(30.0, description="seconds between two bytes of a response (PubChem cuts a call at 30 s)")
    max_retries: int = Field(4, description="retries of a transient failure (5xx, 429, connection errors, resets, "
                                            "bodies cut off mid-transfer)")
    backoff_factor: float = Field(0.5, description="seconds before the first retry; doubled on each retry, plus jitter")
    backoff_jitter: float = Field(0.25, description="random extra seconds added to each backoff")
    backoff_max: float = Field(30.0, description="the longest wait between two tries")
    pubchem_per_second: int = Field(5, description="PubChem requests per second (PubChem's documented policy)")
    pubchem_per_minute: int = Field(400, description="PubChem requests per minute (PubChem's documented policy)")
    uniprot_per_second: int = Field(5, description="UniProt requests per second (a polite default; none documented)")
    eutils_per_second: int = Field(3, description="E-utilities requests per second (NCBI's limit without an API key)")
    pubchem_cache_ttl: int = Field(7 * 24 * 3600, description="seconds a cached PubChem answer is reused")
    uniprot_cache_ttl: int = Field(7 * 24 * 3600, description="seconds a cached UniProt answer is reused")
    eutils_cache_ttl: int = Field(24 * 3600, description="seconds a cached E-utilities answer is reused")
    user_agent: str = Field("biomedgpt/0.1 (+https://github.com/biomedgpt/biomedgpt)",
                            description="the User-Agent sent to every service")
    max_response_bytes: int = Field(20 * 1024 * 1024, gt=0, description="largest response body read; a larger one "
                                    "is refused (early when Content-Length says so) and never parsed or cached")
    deadline: float = Field(45.0, gt=0, description="seconds for one look-up: every try, the waits between tries and "
                                                    "the rate limiter's waits; each try's timeouts are cut to fit")


class Settings(BaseSettings):
    """Everything a user can configure. Field names map to ``BIOMEDGPT_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="BIOMEDGPT_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(default=Path("~/.cache/biomedgpt"), description="caches, weights, Chroma, sessions")
    offline: bool = Field(False, description="no network: look-ups are answered from the cache or fail plainly")
    pubchem_url: str = Field("https://pubchem.ncbi.nlm.nih.gov", description="PubChem host (PUG-REST and PUG-View)")
    uniprot_url: str = Field("https://rest.uniprot.org", description="UniProt REST base URL")
    eutils_url: str = Field("https://eutils.ncbi.nlm.nih.gov/entrez/eutils", description="NCBI E-utilities base URL")
    llm: str = Field("none", description="chat-model back end: none (no chat model; 'offline' is an old alias) | "
                                         "openai:MODEL | ollama:MODEL | hf:PATH | biomedgpt:PRESET")
    chroma_url: str | None = Field(None, description="a Chroma server (http://host:port); unset: the embedded store")
    embedding_model: str | None = Field(None, description="a local sentence-transformers folder for the literature "
                                                          "store; unset: the shipped all-MiniLM-L6-v2")
    model: str = Field("mini", description="the BioMedGPT model: a preset (mini, tiny, biomedgpt-10b) or a folder")
    device: str = Field("auto", description="torch device for the models: auto (CUDA when available) | cpu | cuda")
    lm_weights: Literal["auto", "int8", "fp32"] = Field(
        "auto", description="how the BioMedGPT model's generation loop reads the LM's weights: auto (int8 on CPUs "
                            "with native bf16, AVX-512 BF16 or AMX; else as loaded) | int8 | fp32 (as loaded; "
                            "model/quantize.py)")
    ncbi_api_key: SecretStr | None = Field(None, description="NCBI API key (raises E-utilities to 10 requests/s)")
    max_question_chars: int = Field(4000, description="longest question accepted; longer ones are refused at once")
    literature_min_score: float = Field(0.45, description="cosine similarity below which a passage is not relevant "
                                                          "evidence (calibrated by scripts/calibrate_literature_floor.py)")
    neighbour_min_similarity: float = Field(0.5, description="Tanimoto (molecules) below which a nearest known "
                                                             "structure is not shown as evidence")
    understanding_min_confidence: float = Field(0.5, description="cosine similarity to the nearest example question "
                                                                 "below which the assistant asks instead of guessing")
    tool_choice: Literal["router", "model"] = Field(
        "router", description="who picks the tools: router (the question-understanding layer; a chat model only "
                              "writes the opening sentence, the composed answer's cited facts follow it) | model "
                              "(the chat model calls tools itself and writes the answer)")
    llm_max_tokens: int = Field(512, ge=1, description="most tokens a chat model may write per reply (every back end)")
    llm_timeout: float = Field(120.0, gt=0, description="seconds to a chat model's first token (not the HTTP "
                                                        "clients' read timeout)")
    llm_deadline: float = Field(300.0, gt=0, description="seconds for a whole chat-model reply; a longer one is cut "
                                                         "there and reported as truncated")
    mcp_servers: str | None = Field(None, description="JSON file of external MCP servers in Claude Desktop's "
                                                      "mcpServers format; their tools join the assistant's "
                                                      "(agent/mcp_client.py)")
    # Large references: protein homology search (model/alignment.py) and molecule similarity (model/molecule_db.py)
    protein_db: str | None = Field(None, description="a protein FASTA (e.g. the full uniprot_sprot.fasta) searched "
                                                     "with phmmer besides the shipped Swiss-Prot reference; read "
                                                     "once per process (model/alignment.py)")
    protein_max_evalue: float = Field(1e-5, gt=0, description="phmmer E-value above which a protein alignment hit "
                                                               "is not a homologue and not shown as evidence")
    molecule_db: str | None = Field(None, description="a large molecule reference for similar_known: a .smi "
                                                      "(SMILES ID [NAME]) or a .tsv with smiles and id columns, "
                                                      "fingerprinted once and cached under home (model/molecule_db.py)")
    http: HttpSettings = Field(default_factory=HttpSettings)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(describe_settings_error(error, values)) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {config_file_path()} is not valid TOML: {error} (fix it, or point "
                              f"BIOMEDGPT_CONFIG at another file)") from None

    @field_validator("llm", mode="after")
    @classmethod
    def _llm_alias(cls, value: str) -> str:
        spec = value.strip()
        return "none" if spec.lower() in ("", "none", "offline") else spec  # "offline" now means only "no network"

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


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _toml_has(path: Path, loc: tuple) -> bool:
    try:
        node: Any = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False
    for part in loc:
        if not isinstance(node, dict) or str(part) not in node:
            return False
        node = node[str(part)]
    return True


def describe_settings_error(error: ValidationError, given: dict | None = None) -> str:
    """One line per wrong field, naming where the value came from: an argument, a ``BIOMEDGPT_*`` variable or
    the TOML file (with its ``[table] key``)."""
    given = given or {}
    config = config_file_path()
    environ = {name.upper(): name for name in os.environ}
    lines = []
    for problem in error.errors(include_url=False):
        loc = tuple(str(part) for part in problem.get("loc", ()))
        field = ".".join(loc) or "settings"
        got = "" if problem.get("type") == "missing" else f" (got {_shown(problem.get('input'))})"
        what = f"{problem.get('msg', 'invalid value')}{got}"
        variable = "BIOMEDGPT_" + "__".join(loc).upper()
        parent = "BIOMEDGPT_" + loc[0].upper() if loc else ""
        if loc and loc[0] in given:
            lines.append(f"Settings({field}=...): {what}")
        elif variable in environ:
            lines.append(f"{environ[variable]} ({field}): {what}")
        elif len(loc) > 1 and parent in environ:
            lines.append(f"{environ[parent]} ({field}): {what}")
        elif config.is_file() and _toml_has(config, loc):
            key = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else loc[0]
            lines.append(f"config file {config}: {key}: {what}")
        else:
            lines.append(f"setting {field}: {what}")
    return "invalid configuration: " + "; ".join(lines)


class _ProcessSettings:
    """The process-wide settings, read once from the environment and the TOML file (``reset_settings()``
    forgets them; ``use_settings`` swaps them for a block). One object, not a registry."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: Settings | None = None

    def get(self) -> Settings:
        with self.lock:
            if self.current is None:
                self.current = Settings()
            return self.current


_PROCESS = _ProcessSettings()


def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings (those of an enclosing ``use_settings`` block, if any); with overrides, a
    fresh object (nothing cached).

    Code run by an ``Assistant`` does not read this: its tools get the assistant's ``Services`` (and their
    ``settings``) through the graph's run-time context."""
    if overrides:
        return Settings(**overrides)
    return _PROCESS.get()


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Make ``settings`` the process-wide settings inside the block; the previous ones come back afterwards.

    Everything that falls back to the process-wide settings sees them: ``get_settings()``, clients built
    without settings, and the default ``Services`` (``tools/services.default_services()``, rebuilt for the new
    settings), which tools use when no ``Services`` is handed to them. Why process-wide and not per thread:
    per-run settings travel explicitly (``Assistant(settings=...)`` / ``Services(settings)``, which never read
    this), so this is only for code that is handed nothing: a script, a notebook cell, a test. Two blocks
    running at the same time in two threads would see each other's settings; give each its own ``Services``
    instead.
    """
    with _PROCESS.lock:
        previous = _PROCESS.current
        _PROCESS.current = settings
    try:
        yield settings
    finally:
        with _PROCESS.lock:
            _PROCESS.current = previous


def reset_settings() -> None:
    """Forget the process-wide settings: the next ``get_settings()`` reads the environment again (tests change
    it between cases)."""
    with _PROCESS.lock:
        _PROCESS.current = None


def resolve_device(device: str | Settings | None = None) -> str:
    """The torch device a ``device`` setting means (a string, or the ``device`` of a ``Settings``; ``None``: the
    process-wide setting): ``auto`` is ``cuda`` when torch sees a GPU, else ``cpu``; anything else as given.

    Why one function: the BioMedGPT model, the embedding model and local chat models must agree on where
    ``BIOMEDGPT_DEVICE=auto`` puts them (they once disagreed: CUDA in one place, CPU in another)."""
    if device is None:
        device = get_settings().device
    elif isinstance(device, Settings):
        device = device.device
    device = str(device).strip() or "auto"
    if device != "auto":
        return device
    import torch  # deferred: torch costs seconds to import, and only a model that is loaded needs it

    return "cuda" if torch.cuda.is_available() else "cpu"
