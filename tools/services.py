"""The services one run of biomedgpt uses, built from one ``Settings``: ``Services(settings).pubchem.by_name("aspirin")``.

Use: ``services = Services(settings)`` (or ``Services()`` for the process-wide settings), then
``services.pubchem``, ``services.uniprot``, ``services.eutils`` (the clients, each with its own cached,
rate-limited HTTP session: ``services.session("pubchem")``) and ``services.literature`` (the Chroma literature
store); ``services.close()`` (or ``with Services(...) as services:``) closes the sessions.

Why one object handed around instead of globals: an ``Assistant`` builds one ``Services`` from its settings and
hands it to its tools through LangGraph's run-time context (``agent/context.Context.services``, read by the
tools with :func:`services_in_force`, as LangGraph's react-agent template hands its ``Context``), so two
assistants with different settings in one process use different sessions, clients and stores, and nothing is
looked up by ``id()``. Code outside a graph (the MCP server, scripts, the CLI's ``lookup`` commands) passes a
``Services`` explicitly or builds one from settings.

What is still shared, on purpose: the HTTP cache, the rate limits and PubChem's throttling state live in files
under ``BIOMEDGPT_HOME`` (``tools/http.py``, ``tools/ratelimit.py``), so every ``Services`` on one home (and
every process) draws from the same limits; loaded models are one process-wide cache keyed by (name, device,
dtype) (``tools/biomedgpt_tool.get_model``), because a model is too large to load twice.

Everything is built on first use: an RDKit-only question never imports chromadb, torch or the embedding
model, and a ``Services`` that is never asked for PubChem never opens its cache.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Self

from biomedgpt.core.settings import Settings, get_settings

if TYPE_CHECKING:
    import requests
    from biomedgpt.tools.eutils import EUtilsClient
    from biomedgpt.tools.literature import LiteratureStore
    from biomedgpt.tools.pubchem import PubChemClient
    from biomedgpt.tools.uniprot import UniProtClient

SERVICES = ("pubchem", "uniprot", "eutils")


def _client_class(service: str) -> type:
    """The client class of ``service``, imported on first use: the HTTP layer (requests-cache, ~0.2 s) and the
    store's modules load only when a question needs them, so an RDKit-only ``ask`` never pays for them."""
    # deferred: the clients import the HTTP layer (requests-cache); an RDKit-only question needs none of them
    if service == "pubchem":
        from biomedgpt.tools.pubchem import PubChemClient

        return PubChemClient
    if service == "uniprot":
        from biomedgpt.tools.uniprot import UniProtClient

        return UniProtClient
    from biomedgpt.tools.eutils import EUtilsClient

    return EUtilsClient


class Services:
    """The HTTP clients and the literature store of one ``Settings``, each built on first use and then reused
    (threads share them: the clients and their sessions are thread-safe, the store serialises in Chroma)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._literature: LiteratureStore | None = None

    def __repr__(self) -> str:
        return (f"Services(pubchem_url={self.settings.pubchem_url!r}, home={str(self.settings.home)!r}, "
                f"offline={self.settings.offline})")

    # -- the clients ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """The client of ``service`` ("pubchem", "uniprot" or "eutils"), built on first use."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                factory = _client_class(service)
                client = self._clients[service] = factory(self.settings)
            return client

    @property
    def pubchem(self) -> PubChemClient:
        return self.client("pubchem")

    @property
    def uniprot(self) -> UniProtClient:
        return self.client("uniprot")

    @property
    def eutils(self) -> EUtilsClient:
        return self.client("eutils")

    def session(self, service: str) -> requests.Session:
        """The cached, rate-limited ``requests`` session the client of ``service`` sends through."""
        return self.client(service).http.session

    # -- the literature store ---------------------------------------------------------------------

    @property
    def literature(self) -> LiteratureStore:
        """The literature store (``collection="literature"``, the bundled corpus ingested on its first search);
        its ``pubmed_fetch`` uses this object's E-utilities client."""
        eutils = self.eutils  # cheap: a client opens its session on its first look-up
        with self._lock:
            if self._literature is None:
                # deferred: see _client_class
                from biomedgpt.tools.literature import LiteratureStore

                self._literature = LiteratureStore(self.settings, eutils=eutils)
            return self._literature

    # -- closing ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session built so far (cache connections, rate-limit file handles); the object stays
        usable: a later look-up opens a new session."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -------------------------------------------------------------------------------------------- defaults


class _DefaultServices:
    """The ``Services`` of the process-wide settings: what tools use when none is handed to them (a LangChain
    tool invoked outside biomedgpt's graph, ``langgraph dev`` runs without a context). One object, rebuilt
    when ``get_settings()`` returns another settings object (``reset_settings()``, ``use_settings``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.services: Services | None = None

    def get(self) -> Services:
        settings = get_settings()
        with self.lock:
            if self.services is None or self.services.settings is not settings:
                self.services = Services(settings)  # the previous one's sessions close when it is collected
            return self.services

    def reset(self) -> None:
        with self.lock:
            services, self.services = self.services, None
        if services is not None:
            services.close()


_DEFAULT = _DefaultServices()


def default_services() -> Services:
    """The ``Services`` of the process-wide settings (``get_settings()``; inside ``use_settings`` those of the
    block)."""
    return _DEFAULT.get()


def reset_services() -> None:
    """Close the default ``Services`` (tests; a fresh start). The shared state stays in ``BIOMEDGPT_HOME``."""
    _DEFAULT.reset()


def services_in_force() -> Services:
    """The ``Services`` a tool should use: those of the graph run calling it (the run-time context's
    ``services``, as LangGraph's ``get_runtime()`` gives it), else :func:`default_services`."""
    if "langgraph.config" in sys.modules:  # no graph can be running before langgraph is imported
        from langgraph.runtime import (
            get_runtime,  # deferred: langgraph costs ~0.5 s to import
        )

        try:
            runtime = get_runtime()
        except RuntimeError:  # not inside a runnable: a direct call
            runtime = None
        services = getattr(getattr(runtime, "context", None), "services", None)
        if isinstance(services, Services):
            return services
    return default_services()
