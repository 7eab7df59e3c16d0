"""The one HTTP layer for PubChem, UniProt and E-utilities: ``ServiceClient("pubchem").get_json(url, expect=...)``.

Why one layer: scientists hit rate limits, outages and API drift all the time, and assistants built
on plain ``requests.get`` break exactly there. Every request of every client goes through here, so
the rules below hold everywhere:

* **Retries** (our own loop, :meth:`ServiceClient.request`) on 429/500/502/503/504, connection resets,
  refused connections, timeouts and bodies cut off mid-transfer, for GET *and* POST (PubChem's
  property POSTs are idempotent). ``Retry-After`` is honoured; otherwise exponential backoff with
  jitter, capped at ``settings.http.backoff_max``. A ``Retry-After`` longer than that cap is not
  slept through: the client stops with :class:`Throttled` saying when to come back. Every retry is
  ``report``-ed.
* **A deadline per look-up** (``[http] deadline``, 45 s): the tries, the waits between them and the
  rate limiter's waits all fit in it; each try's timeouts are cut to what is left of it, so a stalled
  server costs one deadline, not ``retries × read_timeout``.
* **A size cap** (``[http] max_response_bytes``, 20 MB): bodies are streamed; a declared
  Content-Length over the cap is refused before reading, and a body that grows past it is dropped
  mid-transfer. Neither is parsed nor cached.
* **Redirects**: at most :data:`MAX_REDIRECTS` (a redirect loop costs 6 requests, not requests' 31).
* **Sessions** are explicit: a ``ServiceClient`` builds its ``requests`` session (cache, gate, User-Agent) on
  first use and owns it (``client.close()``); ``tools/services.Services`` holds one client per service for an
  ``Assistant`` or a script, so its look-ups reuse one session. No process-wide registry: what must be shared
  between sessions (the cache, the rate limits, PubChem's throttling state) is shared through files in
  ``BIOMEDGPT_HOME``, which every session of every process opens.
* **Rate limits** per service and host, shared by every thread, every ``Assistant`` and every process
  that uses the same ``BIOMEDGPT_HOME`` (``tools/ratelimit.py``: pyrate-limiter's sliding-log SQLite
  bucket behind a file lock, ``BIOMEDGPT_HOME/ratelimit.sqlite``): PubChem ≤5/s and ≤400/min, UniProt
  5/s, E-utilities 3/s (10/s with an API key; the policies are in ``tools/throttling.py``). Applied to
  every request actually sent, retries and redirects included; cache hits send nothing and wait for nothing.
* **PubChem's ``X-Throttling-Control``** header (``tools/throttling.py``), also shared through that file:
  Yellow or Red lowers the effective rate of every process (and is reported); Black stops with
  :class:`Throttled` and blocks further sends from every process until the wait is over.
* **Shape validation before caching**: each look-up names the envelope it expects (``expect=``, a
  pydantic model per endpoint in the client modules). A 200 whose body does not parse, or does not
  have that shape, is a :class:`ServiceError` naming the service and what was wrong, and is never
  written to the cache (requests-cache's ``filter_fn``). A cached entry that fails the check when read
  (written by an older version) is dropped by the same filter and fetched again.
* **Cache**: requests-cache ``CachedSession`` on SQLite (WAL, so two processes can share it;
  transactional, so a crash mid-write loses at most that write) at ``BIOMEDGPT_HOME/http_cache.sqlite``,
  GET and POST (the body is part of the key; ``api_key`` is never stored), one TTL per service.
* **One look-up per turn**: inside :func:`request_scope` (the assistant opens one per question)
  identical requests in flight at the same time, or repeated later in the turn, are sent once and
  share the answer or the error.
* **Offline mode** (``BIOMEDGPT_OFFLINE=1``): answers come from the cache only (stale entries too);
  a miss raises :class:`OfflineMiss` naming the URL.
* **Cancellation**: inside a ``core.cancel`` scope (every question of the CLI and the MCP server), Ctrl-C stops a
  look-up before its next try, during a backoff or rate-limit wait, and between chunks of a body
  (``Cancelled``); a socket read in progress ends at its timeout, while the caller has already moved on.
* **Faults** (timeouts, resets, HTTP errors, HTML error pages, malformed JSON, wrong shapes, oversized
  bodies) become :class:`ServiceError` subclasses that name the service, what happened and how often
  it was retried.
"""

from __future__ import annotations

import copy
import json
import random
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.client import IncompleteRead
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from pydantic import TypeAdapter, ValidationError
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession, SQLiteCache
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from biomedgpt.core.cancel import Cancelled, cancelled, check_cancelled
from biomedgpt.core.cancel import sleep as cancellable_sleep
from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.errors import OfflineMiss, ServiceError, StoreError, Throttled
from biomedgpt.tools.progress import report
from biomedgpt.tools.throttling import (
    ServiceGate,
    ServicePolicy,
    policy_for,
    rate_path,
    retry_after_seconds,
)

RETRY_STATUSES = (429, 500, 502, 503, 504)
CACHE_FILE = "http_cache.sqlite"
MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


# --------------------------------------------------------------------------------------------------
# What an answer must look like
# --------------------------------------------------------------------------------------------------


class InvalidAnswer(ValueError):
    """Raised by an answer check: the body is not what the endpoint promises (the message says how).

    ``failure`` True means a well-formed answer that reports a failure of its own (E-utilities'
    ``ERROR`` field): it is not cached either, and the message is shown as the failure.
    """

    def __init__(self, message: str, *, failure: bool = False) -> None:
        self.failure = failure
        super().__init__(message)


#: A check of one answer: takes the response, returns its parsed body, raises :class:`InvalidAnswer`.
Expect = Callable[[requests.Response], Any]


def _excerpt(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_validation_error(error: Any, limit: int = 3) -> str:
    """A pydantic ``ValidationError`` as one short line: ``PropertyTable.Properties: List should have at least 1 item``."""
    parts = []
    problems = error.errors(include_url=False)
    for problem in problems[:limit]:
        where = ".".join(str(p) for p in problem.get("loc", ())) or "the body"
        got = problem.get("input")
        shown = "" if problem.get("type") == "missing" or isinstance(got, (dict, list)) and len(str(got)) > 60 \
            else f" (got {_excerpt(got, 40)})"
        parts.append(f"{where}: {problem.get('msg', 'invalid')}{shown}")
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return "; ".join(parts) + more


def parse_json(response: requests.Response) -> Any:
    """The JSON body, or :class:`InvalidAnswer` quoting the start of what came instead."""
    try:
        return response.json()
    except ValueError:
        raise InvalidAnswer(f"the answer was not valid JSON ({_excerpt(response.text or '', 80)!r})") from None


def expect_json(shape: Any = None, check: Callable[[Any], None] | None = None) -> Expect:
    """An answer check: valid JSON that validates against ``shape`` (a pydantic model or type), then ``check``."""
    adapter = TypeAdapter(shape) if shape is not None else None

    def validate(response: requests.Response) -> Any:
        data = parse_json(response)
        if adapter is not None:
            try:
                adapter.validate_python(data)
            except ValidationError as error:
                raise InvalidAnswer(describe_validation_error(error)) from None
        if check is not None:
            check(data)
        return data

    return validate


ANY_JSON: Expect = expect_json()


def expect_text(check: Callable[[str], None]) -> Expect:
    """An answer check for text bodies (``check`` raises :class:`InvalidAnswer`)."""

    def validate(response: requests.Response) -> str:
        text = response.text or ""
        check(text)
        return text

    return validate


# --------------------------------------------------------------------------------------------------
# One look-up: its deadline, its answer check, its retries (a ContextVar: the adapter and the cache
# filter run several calls below ServiceClient.request, in the same thread)
# --------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    label: str
    what: str
    deadline: float  # time.monotonic()
    max_bytes: int
    expect: Expect | None = None
    retries: int = 0
    outcomes: dict[int, tuple[bool, Any]] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self, response: requests.Response) -> tuple[bool, Any]:
        """``(True, parsed body)`` or ``(False, InvalidAnswer)``, computed once per body."""
        key = hash((response.status_code, response.content))
        outcome = self.outcomes.get(key)
        if outcome is None:
            try:
                outcome = (True, self.expect(response) if self.expect is not None else None)
            except InvalidAnswer as error:
                outcome = (False, error)
            self.outcomes[key] = outcome
        return outcome


_CALL: ContextVar[_Call | None] = ContextVar("biomedgpt_http_call", default=None)


def _retries_so_far() -> int:
    call = _CALL.get()
    return call.retries if call else 0


def _cache_filter(response: requests.Response) -> bool:
    """requests-cache's ``filter_fn``: a 200 is written (and kept when read) only if its shape is right."""
    call = _CALL.get()
    if call is None or call.expect is None or getattr(response, "status_code", None) != 200:
        return True
    return call.check(response)[0]



# --------------------------------------------------------------------------------------------------
# One turn: identical requests go out once
# --------------------------------------------------------------------------------------------------


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class RequestScope:
    """Identical requests made inside one scope (one question) share one answer or one error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[tuple, _Flight] = {}

    def run(self, key: tuple, fn: Callable[[], Any]) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if owner:
            try:
                flight.result = fn()
            except BaseException as error:
                flight.error = error
                if not isinstance(error, Exception):  # interrupted: nothing to share, the next asker tries again
                    with self._lock:
                        self._flights.pop(key, None)
                raise
            finally:
                flight.done.set()
            return flight.result
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        return copy.deepcopy(flight.result)


_SCOPE: ContextVar[RequestScope | None] = ContextVar("biomedgpt_http_scope", default=None)


@contextmanager
def request_scope() -> Iterator[RequestScope]:
    """Inside the block (and in threads started with a copy of its context) identical requests are sent once."""
    scope = RequestScope()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


# --------------------------------------------------------------------------------------------------
# The transport adapter: gate, deadline, size cap
# --------------------------------------------------------------------------------------------------


class ResponseTooLarge(ServiceError):
    """An answer larger than ``[http] max_response_bytes``; it was not read to the end, parsed or cached."""


class _GatedAdapter(HTTPAdapter):
    """Passes the gate (block check + rate limit) before each send, reads throttling headers after, and reads
    the body itself, in chunks, up to the size cap (urllib3 retries nothing: the client's loop does)."""

    def __init__(self, gate: ServiceGate) -> None:
        self.gate = gate
        super().__init__(max_retries=Retry(0, read=False, redirect=False, raise_on_status=False))

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             **kwargs: Any) -> requests.Response:  # type: ignore[override]
        call = _CALL.get()
        check_cancelled()  # a cancelled question sends nothing more
        self.gate.before_send(call.deadline if call else None, what=call.what if call else "",
                              retried=call.retries if call else 0)
        if call is not None:
            left = call.remaining()
            if left <= 0:
                raise _DeadlinePassed()
            if isinstance(timeout, tuple):
                timeout = tuple(min(t, left) if t is not None else left for t in timeout)
            else:
                timeout = min(timeout, left) if timeout is not None else left
        response = super().send(request, stream=True, timeout=timeout, **kwargs)
        self.gate.observe(response.headers, retried=call.retries if call else 0)
        cap = call.max_bytes if call is not None else None
        declared = response.headers.get("Content-Length", "")
        if cap is not None and declared.isdigit() and int(declared) > cap:
            response.close()
            raise self._too_large(call, request, f"it declares {int(declared):,} bytes")
        body = bytearray()
        for chunk in response.iter_content(_CHUNK):
            if cancelled():
                response.close()
                raise Cancelled()
            body += chunk
            if cap is not None and len(body) > cap:
                response.close()
                raise self._too_large(call, request, "it kept coming")
        response._content = bytes(body)
        response._content_consumed = True
        return response

    def close(self) -> None:
        """Close the connection pool and the gate's handle on the rate-limit file (``Session.close()`` calls it)."""
        super().close()
        self.gate.close()

    def _too_large(self, call: _Call, request: requests.PreparedRequest, how: str) -> ResponseTooLarge:
        return ResponseTooLarge(self.gate.policy.label,
                                f"{call.what}: the answer is larger than {call.max_bytes:,} bytes ({how}); it was "
                                f"not read further or cached (raise [http] max_response_bytes if it is expected)",
                                url=request.url, retried=call.retries)


class _DeadlinePassed(Exception):
    """The look-up's deadline passed before a try could start."""


# --------------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------------

#: How often a look-up asks again when another process holds the SQLite cache ("database is locked").
CACHE_BUSY_RETRIES = 20


def cache_path(settings: Settings | None = None) -> Path:
    """Where the HTTP cache lives: ``BIOMEDGPT_HOME/http_cache.sqlite``."""
    return (settings or get_settings()).path(CACHE_FILE)


def _corrupt_cache(path: Any, error: BaseException) -> StoreError:
    return StoreError(f"the HTTP cache {path} is unreadable ({error}); it only holds copies of web answers, "
                      f"so delete it (rm {path}*) and it is rebuilt on the next look-up")


def build_session(service: str, settings: Settings | None = None) -> requests.Session:
    """A new cached, rate-limited ``requests`` session for ``service`` under ``settings``; the caller owns it
    (``ServiceClient`` builds one on first use and closes it with ``close()``)."""
    settings = settings or get_settings()
    return _build_session(policy_for(service, settings), settings)


def _build_session(policy: ServicePolicy, settings: Settings) -> requests.Session:
    path = cache_path(settings)
    for attempt in range(CACHE_BUSY_RETRIES):
        try:
            backend = SQLiteCache(str(path), wal=True, busy_timeout=30_000)
            break
        except sqlite3.OperationalError as error:  # another process is creating it: wait, not "corrupt"
            if "locked" not in str(error) and "busy" not in str(error) or attempt == CACHE_BUSY_RETRIES - 1:
                raise _corrupt_cache(path, error) from None
            time.sleep(0.05 * (attempt + 1))
    try:
        session = CachedSession(
            backend=backend,
            expire_after=policy.cache_ttl,
            allowable_methods=("GET", "POST"),
            allowable_codes=(200,),
            ignored_parameters=["api_key"],  # never stored, never part of the key
            match_headers=False,
            cache_control=False,  # our TTLs decide, not PubChem's "private" headers
            stale_if_error=True,  # an outage falls back to an older copy when there is one
            only_if_cached=settings.offline,
            filter_fn=_cache_filter,  # only answers of the right shape are written, and kept when read
        )
    except sqlite3.DatabaseError as error:
        raise _corrupt_cache(path, error) from None
    adapter = _GatedAdapter(ServiceGate(policy, rate_path(settings)))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = settings.http.user_agent
    return session


# --------------------------------------------------------------------------------------------------
# Fault descriptions
# --------------------------------------------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception wrapped inside it (requests → urllib3 → socket), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if isinstance(current, MaxRetryError) and current.reason is not None:
            current = current.reason
        elif current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
        else:
            current = current.__cause__ or current.__context__
    return chain


def _describe_exception(error: BaseException) -> str:
    """A few words for what went wrong on the wire ("read timed out", "connection reset by the server")."""
    chain = _chain(error)

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(ReadTimeoutError, requests.exceptions.ReadTimeout):
        return "read timed out"
    if has(ConnectionRefusedError):
        return "connection refused"
    if has(socket.gaierror):
        return "cannot resolve the host name (no network? BIOMEDGPT_OFFLINE=1 answers from the cache)"
    # urllib3 makes NewConnectionError a subclass of ConnectTimeoutError; only a real timeout is one.
    if any(isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError) for e in chain) or \
            has(requests.exceptions.ConnectTimeout) and not has(NewConnectionError):
        return "connect timed out"
    root = chain[-1]
    if has(requests.exceptions.ChunkedEncodingError, IncompleteRead) or "IncompleteRead" in str(root):
        return "the answer was cut off mid-transfer (connection broken)"
    if has(requests.exceptions.ContentDecodingError):
        return f"the answer could not be decoded ({root})"
    if has(NewConnectionError):
        return f"could not connect ({root})"
    if has(ConnectionResetError, BrokenPipeError, ProtocolError) or type(root).__name__ == "RemoteDisconnected":
        return f"connection reset: the server dropped it without answering ({type(root).__name__})"
    return f"{type(root).__name__}: {root}"


_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_TAG_RE = re.compile(r"<[^>]+>")


def body_summary(response: requests.Response, limit: int = 200) -> str:
    """A short human-readable summary of an error body: JSON messages, an HTML page's title, or text."""
    text = response.text or ""
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type or text.lstrip().lower().startswith(("<!doctype html", "<html")):
        title = _TITLE_RE.search(text)
        if title:
            return "HTML page: " + " ".join(title.group(1).split())[:limit]
        return "HTML page: " + " ".join(_TAG_RE.sub(" ", text).split())[:limit]
    try:
        data = response.json()
    except ValueError:
        return " ".join(text.split())[:limit]
    if isinstance(data, dict):
        for key in ("messages", "message", "error", "ERROR"):
            if data.get(key):
                value = data[key]
                return ("; ".join(map(str, value)) if isinstance(value, list) else str(value))[:limit]
        fault = data.get("Fault")
        if isinstance(fault, dict):
            details = fault.get("Details") or []
            parts = [str(fault.get("Code", "")), str(fault.get("Message", ""))] + [str(d) for d in details]
            return ": ".join(p for p in parts[:2] if p) + (f" ({'; '.join(parts[2:])})" if parts[2:] else "")
    return " ".join(text.split())[:limit]


# --------------------------------------------------------------------------------------------------
# The client base class
# --------------------------------------------------------------------------------------------------


class ServiceClient:
    """Requests to one service with the whole policy applied; service clients subclass ``explain``.

    ``request`` returns a successful, shape-checked ``requests.Response`` or raises a ``ServiceError``
    subclass; ``get_json``/``post_json`` return the parsed body. ``expect`` is the answer check
    (:func:`expect_json` with the endpoint's envelope); without one, any valid JSON passes.
    """

    def __init__(self, service: str, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.policy = policy_for(service, self.settings)
        self.service = service
        self.label = self.policy.label
        self.base_url = self.policy.base_url
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """This client's cached, rate-limited session, built on first use (threads share it)."""
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    self._session = build_session(self.service, self.settings)
        return self._session

    def close(self) -> None:
        """Close the session (its cache connection and rate-limit file handle); a later look-up opens a new one."""
        with self._session_lock:
            session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.http.connect_timeout, self.settings.http.read_timeout)

    def url(self, *parts: str) -> str:
        """``base_url`` joined with ``parts`` (already URL-encoded by the caller)."""
        return "/".join([self.base_url.rstrip("/"), *(p.strip("/") for p in parts)])

    # -- the policy hook -------------------------------------------------------------------------
    def explain(self, response: requests.Response, what: str, retried: int) -> ServiceError:
        """The error for an unsuccessful HTTP answer; service clients override this for their fault bodies."""
        status = response.status_code
        summary = body_summary(response)
        reason = {429: "too many requests", 500: "internal server error", 502: "bad gateway",
                  503: "service unavailable", 504: "gateway timeout"}.get(status, response.reason or "error")
        return ServiceError(self.label, f"{what} failed: HTTP {status} {reason}"
                                        + (f" ({summary})" if summary else ""),
                            url=response.url, status=status, retried=retried)

    # -- requests ----------------------------------------------------------------------------------
    def request(self, method: str, url: str, *, params: dict | None = None, data: dict | None = None,
                what: str | None = None, expect: Expect | None = ANY_JSON) -> requests.Response:
        """Send one look-up under the policy; ``what`` names it in error messages, ``expect`` checks the answer
        (``None``: no check, e.g. for text bodies checked by the caller)."""
        return self.fetch(method, url, params=params, data=data, what=what, expect=expect)[0]

    def fetch(self, method: str, url: str, *, params: dict | None = None, data: dict | None = None,
              what: str | None = None, expect: Expect | None = ANY_JSON) -> tuple[requests.Response, Any]:
        """``(response, parsed body)`` of one look-up; inside :func:`request_scope` identical look-ups share it."""
        what = what or f"{method} {url}"
        scope = _SCOPE.get()
        if scope is None:
            return self._fetch(method, url, params, data, what, expect)
        key = (self.service, self.base_url, method.upper(), url, json.dumps(params, sort_keys=True, default=str),
               json.dumps(data, sort_keys=True, default=str), id(expect))
        return scope.run(key, lambda: self._fetch(method, url, params, data, what, expect))

    def _fetch(self, method: str, url: str, params: dict | None, data: dict | None, what: str,
               expect: Expect | None) -> tuple[requests.Response, Any]:
        http = self.settings.http
        call = _Call(self.label, what, time.monotonic() + http.deadline, http.max_response_bytes, expect)
        token = _CALL.set(call)
        refetched = False
        contended = 0
        try:
            while True:
                try:
                    response = self.session.request(method, url, params=params, data=data, timeout=self.timeout)
                except sqlite3.OperationalError as error:
                    # Another process holds the cache (two first writers switching it to WAL at once): a
                    # busy database is not a corrupt one; wait briefly and ask again, within the deadline.
                    busy = "locked" in str(error) or "busy" in str(error)
                    if not busy or contended >= CACHE_BUSY_RETRIES or time.monotonic() > call.deadline:
                        raise _corrupt_cache(cache_path(self.settings), error) from None
                    contended += 1
                    time.sleep(0.05 * contended)
                    continue
                except (Throttled, ResponseTooLarge):
                    raise
                except ServiceError:
                    raise
                except _DeadlinePassed:
                    raise self._deadline_error(what, url, call, "no time left for another try") from None
                except sqlite3.DatabaseError as error:
                    raise _corrupt_cache(cache_path(self.settings), error) from None
                except requests.exceptions.TooManyRedirects:
                    raise ServiceError(self.label, f"{what}: more than {MAX_REDIRECTS} redirects (a redirect "
                                                   f"loop?); not followed further", url=url,
                                       retried=call.retries) from None
                except requests.exceptions.RequestException as error:
                    if not _transient(error):
                        raise self._transport_error(error, url, what, call) from None
                    reason = _describe_exception(error)
                    if not self._wait_to_retry(call, reason, None, state="unreachable"):
                        raise self._transport_error(error, url, what, call) from None
                    continue
                if self.settings.offline and response.status_code == 504 and response.reason == "Not Cached":
                    # requests-cache's only_if_cached answer for a miss (errors are never cached, so no real 504 is)
                    raise OfflineMiss(self.label, f"offline mode (BIOMEDGPT_OFFLINE=1) and {response.url} is not in "
                                                  f"the cache; go online once to fetch it", url=response.url)
                if response.status_code in RETRY_STATUSES:
                    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                    if self._wait_to_retry(call, f"HTTP {response.status_code}", retry_after, state="busy",
                                           status=response.status_code):
                        continue
                if response.status_code >= 400:
                    raise self.explain(response, what, call.retries)
                if expect is None or response.status_code != 200:
                    return response, None
                ok, outcome = call.check(response)
                if ok:
                    return response, outcome
                if getattr(response, "from_cache", False) and not refetched:
                    # An entry cached before this check (the filter has just dropped it): ask once more.
                    refetched = True
                    report(f"{self.label}: the cached answer for {what} has the wrong shape ({outcome}); "
                           f"fetching it again", service=self.service)
                    continue
                if outcome.failure:
                    raise ServiceError(self.label, f"{what} failed: {outcome}", url=response.url,
                                       status=response.status_code, retried=call.retries)
                raise ServiceError(self.label, f"{what}: the answer has the wrong shape ({outcome}); it was not "
                                               f"cached, so the next look-up asks again", url=response.url,
                                   status=response.status_code, retried=call.retries)
        finally:
            _CALL.reset(token)

    def _wait_to_retry(self, call: _Call, reason: str, retry_after: float | None, *, state: str,
                       status: int | None = None) -> bool:
        """Sleep before the next try and return True, or return False when the retries are used up.

        A ``Retry-After`` beyond ``backoff_max`` raises :class:`Throttled`; a wait that would end after the
        look-up's deadline raises a ``ServiceError`` saying so.
        """
        http = self.settings.http
        if call.retries >= http.max_retries:
            return False
        if retry_after is not None and retry_after > http.backoff_max:
            when = (datetime.now() + timedelta(seconds=retry_after)).strftime("%H:%M:%S")
            raise Throttled(self.label, f"asked to wait {retry_after:.0f} s (Retry-After) after {reason}, "
                                        f"longer than this client waits ({http.backoff_max:g} s); try again after {when}",
                            retry_after=retry_after, status=status, retried=call.retries)
        wait = retry_after if retry_after is not None else backoff_time(call.retries + 1, http.backoff_factor,
                                                                          http.backoff_jitter, http.backoff_max)
        if wait >= call.remaining():
            raise self._deadline_error(call.what, None, call, reason, status=status)
        attempt = call.retries + 1
        report(f"{self.label} {state} ({reason}), retrying in {wait:.1f} s (retry {attempt} of {http.max_retries})",
               service=self.service, reason=reason, wait=wait, attempt=attempt, retry_after=retry_after)
        if wait > 0:
            cancellable_sleep(wait)  # Ctrl-C ends the wait (core/cancel.py)
        call.retries = attempt
        return True

    def _deadline_error(self, what: str, url: str | None, call: _Call, reason: str,
                        status: int | None = None) -> ServiceError:
        deadline = self.settings.http.deadline
        tries = call.retries + 1
        return ServiceError(self.label, f"{what}: no answer within the {deadline:g} s deadline of one look-up "
                                        f"({tries} {'try' if tries == 1 else 'tries'}; last: {reason}; "
                                        f"[http] deadline)", url=url, status=status, retried=call.retries)

    def _transport_error(self, error: BaseException, url: str, what: str, call: _Call) -> ServiceError:
        description = _describe_exception(error)
        connect, read = self.timeout
        retried = call.retries
        if description == "read timed out":
            if call.remaining() <= 0.05:
                return self._deadline_error(what, url, call, "read timed out")
            message = f"{what}: no answer within the {read:g} s read timeout"
        elif description == "connect timed out":
            if call.remaining() <= 0.05:
                return self._deadline_error(what, url, call, "connect timed out")
            message = f"{what}: could not connect to {urlsplit(url).netloc} within {connect:g} s"
        else:
            message = f"{what}: {description}"
        return ServiceError(self.label, message, url=url, retried=retried)

    def json_of(self, response: requests.Response, what: str) -> Any:
        """The parsed JSON body (for answers fetched with ``expect=None``); malformed bodies raise ServiceError."""
        try:
            return parse_json(response)
        except InvalidAnswer as error:
            self._forget(response)
            raise ServiceError(self.label, f"{what}: {error}", url=response.url, status=response.status_code) from None

    def _forget(self, response: requests.Response) -> None:
        key = getattr(response, "cache_key", None)
        cache = getattr(self.session, "cache", None)
        if key and cache is not None:
            try:
                cache.delete(key)
            except Exception:  # noqa: BLE001 - forgetting is best effort; the error below matters more
                pass

    def get(self, url: str, params: dict | None = None, what: str | None = None,
            expect: Expect | None = ANY_JSON) -> requests.Response:
        return self.request("GET", url, params=params, what=what, expect=expect)

    def get_json(self, url: str, params: dict | None = None, what: str | None = None,
                 expect: Expect = ANY_JSON) -> Any:
        return self.fetch("GET", url, params=params, what=what or f"GET {url}", expect=expect)[1]

    def post_json(self, url: str, data: dict, what: str | None = None, expect: Expect = ANY_JSON,
                  params: dict | None = None) -> Any:
        return self.fetch("POST", url, params=params, data=data, what=what or f"POST {url}", expect=expect)[1]

    def get_text(self, url: str, params: dict | None = None, what: str | None = None,
                 expect: Expect | None = None) -> str:
        return self.request("GET", url, params=params, what=what, expect=expect).text

    def post_text(self, url: str, data: dict, what: str | None = None, expect: Expect | None = None) -> str:
        return self.request("POST", url, data=data, what=what, expect=expect).text


class WrapsServiceClient:
    """The service clients (``PubChemClient``, ``UniProtClient``, ``EUtilsClient``) wrap one ``ServiceClient`` as
    ``self.http``: this gives them its settings and ``close()``, and makes them context managers."""

    http: ServiceClient

    @property
    def settings(self) -> Settings:
        return self.http.settings

    def close(self) -> None:
        """Close the client's session (a look-up after this opens a new one)."""
        self.http.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backoff_time(retry: int, factor: float, jitter: float, cap: float) -> float:
    """The wait before the ``retry``-th retry: ``factor·2^(retry-1)`` plus up to ``jitter``, at most ``cap``.

    The first retry already waits ``factor`` (retrying at once only adds load to a server that just
    said it is busy).
    """
    value = factor * (2 ** (retry - 1))
    if jitter:
        value += random.random() * jitter
    return float(max(0.0, min(cap, value)))


def _transient(error: BaseException) -> bool:
    """Faults worth another try: timeouts, refused/reset connections, bodies cut off; not TLS or URL errors."""
    exceptions = requests.exceptions
    if isinstance(error, (exceptions.SSLError, exceptions.InvalidURL, exceptions.InvalidSchema,
                          exceptions.MissingSchema, exceptions.InvalidHeader, exceptions.TooManyRedirects)):
        return False
    return isinstance(error, (exceptions.ConnectionError, exceptions.Timeout, exceptions.ChunkedEncodingError,
                              exceptions.ContentDecodingError))
