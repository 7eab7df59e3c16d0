"""Errors raised by the network clients and the stores; all are ``BiomedGPTError``s with a user-facing message."""

from __future__ import annotations

from biomedgpt.core.errors import BiomedGPTError, InputError


class ServiceError(BiomedGPTError):
    """A remote service failed. The message names the service, what happened and whether it was retried."""

    def __init__(self, service: str, message: str, *, url: str | None = None, status: int | None = None,
                 retried: int = 0) -> None:
        self.service = service
        self.url = url
        self.status = status
        self.retried = retried
        tail = f" (after {retried} retries)" if retried else ""
        super().__init__(f"{service}: {message}{tail}")


class NotFound(ServiceError, InputError):
    """The service has no record for the query (the message names the query)."""


class Throttled(ServiceError):
    """The service blocks this client (e.g. PubChem's Black throttling status); says when to retry."""

    def __init__(self, service: str, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(service, message, **kwargs)


class OfflineMiss(ServiceError):
    """BIOMEDGPT_OFFLINE=1 and the answer is not in the cache; the message names the URL."""


class InactiveEntry(NotFound):
    """A UniProt entry that was deleted or demerged; ``replacements`` lists the new accessions, if any."""

    def __init__(self, service: str, message: str, *, replacements: list[str] | None = None, **kwargs) -> None:
        self.replacements = list(replacements or [])
        super().__init__(service, message, **kwargs)


class StoreError(BiomedGPTError):
    """The literature store or a cache is unreadable or corrupt; the message says which file and what to do."""
