"""The one HTTP layer for PubChem, UniProt and E-utilities: ``ServiceClient("pubchem").get_json(url)``.

Why one layer: scientists hit rate limits, outages and API drift all the time, and assistants built
on plain ``requests.get`` break exactly there. Every request of every client goes through here, so
the rules below hold everywhere:

* **Retries** with urllib3 ``Retry`` (subclassed as :class:`ServiceRetry`) on 429/500/502/503/504,
  connection resets and read timeouts, for GET *and* POST (PubChem's property POSTs are idempotent).
  ``Retry-After`` is honoured; otherwise exponential backoff with jitter, capped at
  ``settings.http.backoff_max``. A ``Retry-After`` longer than that cap is not slept through: the
  client stops with :class:`Throttled` saying when to come back. Every retry is ``report``-ed.
* **Rate limits** per service and host, shared by all threads of the process
  (:class:`RateLimiter`, a sliding window): PubChem ≤5/s and ≤400/min, UniProt 5/s, E-utilities 3/s
  (10/s with an API key). Applied to every request actually sent, retries included; cache hits send
  nothing and wait for nothing.
* **PubChem's ``X-Throttling-Control``** header: Yellow or Red lowers the effective rate (and is
  reported); Black stops with :class:`Throttled` and blocks further sends until the wait is over.
* **Cache**: requests-cache ``CachedSession`` on SQLite (WAL, so two processes can share it;
  transactional, so a crash mid-write loses at most that write) at ``BIOMEDGPT_HOME/http_cache.sqlite``,
  GET and POST (the body is part of the key; ``api_key`` is never stored), one TTL per service.
* **Offline mode** (``BIOMEDGPT_OFFLINE=1``): answers come from the cache only (stale entries too);
  a miss raises :class:`OfflineMiss` naming the URL.
* **Faults** (timeouts, resets, HTTP errors, HTML error pages, malformed JSON) become
  :class:`ServiceError` subclasses that name the service, what happened and how often it was retried.
"""

from __future__ import annotations

import random
import re
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.errors import OfflineMiss, ServiceError, StoreError, Throttled
from biomedgpt.tools.progress import report

SERVICES = ("pubchem", "uniprot", "eutils")
RETRY_STATUSES = (429, 500, 502, 503, 504)
CACHE_FILE = "http_cache.sqlite"


# --------------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """How hard to slow down when PubChem's ``X-Throttling-Control`` header turns Yellow or Red.

    PubChem documents the colours but not the factors; halving at Yellow and dropping to a fifth at
    Red keeps well clear of Black (a block) while still making progress.
    """

    yellow_scale: float = 0.5
    red_scale: float = 0.2
    blocked_wait: float = 60.0  # seconds to stay away after Black when no Retry-After is given


@dataclass(frozen=True)
class ServicePolicy:
    """Everything the HTTP layer needs to know about one service; built from settings by :func:`policy_for`."""

    service: str  # "pubchem" | "uniprot" | "eutils"
    label: str  # how users know it: "PubChem"
    base_url: str
    per_second: int
    per_minute: int | None
    cache_ttl: int  # seconds
    # Requests are stamped when they leave; the server counts them when they arrive. A small margin
    # on the window keeps network and scheduling jitter from ever putting one request too many into
    # the server's one-second window.
    window_margin: float = 0.2
    throttle: ThrottlePolicy = ThrottlePolicy()

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc


_LABELS = {"pubchem": "PubChem", "uniprot": "UniProt", "eutils": "NCBI E-utilities"}


def policy_for(service: str, settings: Settings | None = None) -> ServicePolicy:
    """The policy of ``service`` ("pubchem", "uniprot" or "eutils") under ``settings``."""
    settings = settings or get_settings()
    http = settings.http
    if service == "pubchem":
        return ServicePolicy(service, _LABELS[service], settings.pubchem_url, http.pubchem_per_second,
                             http.pubchem_per_minute, http.pubchem_cache_ttl)
    if service == "uniprot":
        return ServicePolicy(service, _LABELS[service], settings.uniprot_url, http.uniprot_per_second, None,
                             http.uniprot_cache_ttl)
    if service == "eutils":
        # NCBI allows 10 requests/s with an API key, 3 without.
        per_second = max(http.eutils_per_second, 10) if settings.ncbi_api_key else http.eutils_per_second
        return ServicePolicy(service, _LABELS[service], settings.eutils_url, per_second, None,
                             http.eutils_cache_ttl)
    raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


# --------------------------------------------------------------------------------------------------
# Rate limiting and PubChem's throttling header
# --------------------------------------------------------------------------------------------------


class RateLimiter:
    """A thread-safe sliding-window limiter over several windows, e.g. ``[(5, 1.0), (400, 60.0)]``.

    ``acquire()`` reserves the earliest send time that keeps every window within its limit and sleeps
    until then (outside the lock, so other threads queue up fairly in reservation order). ``scale``
    (0 < scale ≤ 1) lowers every limit while a server asks us to slow down. ``clock`` and ``sleep`` are
    injectable so the window arithmetic can be checked without waiting.
    """

    def __init__(self, windows: Sequence[tuple[int, float]], *, margin: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not windows or any(limit < 1 or period <= 0 for limit, period in windows):
            raise ValueError(f"rate-limit windows must be (limit ≥ 1, period > 0) pairs, got {windows!r}")
        self.windows = tuple((int(limit), float(period)) for limit, period in windows)
        self.margin = margin
        self.scale = 1.0
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._longest = max(period for _, period in self.windows) + margin

    def limits(self) -> list[tuple[int, float]]:
        """The windows in force now (after ``scale``)."""
        return [(max(1, int(limit * self.scale)), period) for limit, period in self.windows]

    def reserve(self) -> float:
        """Claim the next free send slot; returns how many seconds the caller must wait for it."""
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self._longest:
                self._sent.popleft()
            slot = max(now, self._sent[-1]) if self._sent else now
            for limit, period in self.limits():
                if len(self._sent) >= limit:
                    slot = max(slot, self._sent[-limit] + period + self.margin)
            self._sent.append(slot)
            return slot - now

    def acquire(self) -> float:
        """Wait for a free slot; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


_COLOURS = {"green": 0, "yellow": 1, "red": 2, "black": 3}
_THROTTLE_RE = re.compile(r"([A-Za-z ]+?)\s+status:\s*([A-Za-z]+)\s*(?:\((\d+)%\))?")


def parse_throttling(header: str) -> list[tuple[str, str, int | None]]:
    """``"Request Count status: Green (0%), ..."`` → ``[("Request Count", "Green", 0), ...]``."""
    out = []
    for name, colour, percent in _THROTTLE_RE.findall(header or ""):
        out.append((name.strip(" ,"), colour.capitalize(), int(percent) if percent else None))
    return out


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, Retry().parse_retry_after(value))
    except Exception:  # noqa: BLE001 - a malformed header just means "no advice"
        return None


class ServiceGate:
    """Everything shared by all requests to one service on one host: the limiter and the block state."""

    def __init__(self, policy: ServicePolicy) -> None:
        self.policy = policy
        windows = [(policy.per_second, 1.0)]
        if policy.per_minute:
            windows.append((policy.per_minute, 60.0))
        self.limiter = RateLimiter(windows, margin=policy.window_margin)
        self.blocked_until = 0.0  # time.monotonic() before which nothing may be sent
        self.block_reason = ""
        self._lock = threading.Lock()

    def _blocked_error(self, retried: int = 0) -> Throttled:
        remaining = max(0.0, self.blocked_until - time.monotonic())
        when = (datetime.now() + timedelta(seconds=remaining)).strftime("%H:%M:%S")
        return Throttled(self.policy.label,
                         f"this client is blocked ({self.block_reason}); retry in {remaining:.0f} s (after {when})",
                         retry_after=remaining, retried=retried)

    def before_send(self) -> None:
        """Called right before each request goes on the wire (first tries and retries alike)."""
        if time.monotonic() < self.blocked_until:
            raise self._blocked_error(_retries_so_far())
        self.limiter.acquire()

    def observe(self, headers: Any) -> None:
        """Read PubChem's ``X-Throttling-Control`` from any response: slow down, or stop at Black."""
        header = headers.get("X-Throttling-Control") if headers is not None else None
        if not header:
            return
        statuses = parse_throttling(header)
        if not statuses:
            return
        worst = max(statuses, key=lambda s: _COLOURS.get(s[1].lower(), 0))
        colour = worst[1].lower()
        throttle = self.policy.throttle
        if colour == "black":
            wait = _retry_after_seconds(headers.get("Retry-After")) or throttle.blocked_wait
            with self._lock:
                self.blocked_until = max(self.blocked_until, time.monotonic() + wait)
                self.block_reason = f"X-Throttling-Control: {header}"
            report(f"{self.policy.label} has blocked this client (throttling status Black); "
                   f"retry in {wait:.0f} s", service=self.policy.service, status="Black", wait=wait)
            raise self._blocked_error(_retries_so_far())
        scale = {"yellow": throttle.yellow_scale, "red": throttle.red_scale}.get(colour, 1.0)
        previous = self.limiter.scale
        self.limiter.scale = scale
        if scale < 1.0:
            per_second = self.limiter.limits()[0][0]
            report(f"{self.policy.label} asks to slow down ({worst[0]} status {worst[1]}); "
                   f"sending at most {per_second} request(s)/s", service=self.policy.service,
                   status=worst[1], per_second=per_second, header=header)
        elif previous < 1.0:
            report(f"{self.policy.label} throttling back to Green; full rate again", service=self.policy.service,
                   status="Green")


_GATES: dict[tuple, ServiceGate] = {}
_GATES_LOCK = threading.Lock()


def gate_for(policy: ServicePolicy) -> ServiceGate:
    """The process-wide gate of ``policy``'s service and host (shared by every thread and session)."""
    key = (policy.service, policy.host, policy.per_second, policy.per_minute)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = ServiceGate(policy)
        return gate


# --------------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------------

# How many retries the current request has made so far (set per ServiceClient.request call).
_RETRIES: ContextVar[list[int] | None] = ContextVar("biomedgpt_http_retries", default=None)


def _retries_so_far() -> int:
    counter = _RETRIES.get()
    return counter[0] if counter else 0


class ServiceRetry(Retry):
    """urllib3 ``Retry`` that reports each retry, waits for the rate limiter and bounds its waits.

    Differences from the stock policy, and why:
    * the first retry already waits ``backoff_factor`` (stock urllib3 retries at once, which only adds
      load to a server that just said it is busy); the n-th waits ``factor·2^(n-1)`` plus jitter,
      never more than ``backoff_max``;
    * a ``Retry-After`` longer than ``backoff_max`` is not slept through: :class:`Throttled` says when
      to come back instead of freezing the caller for minutes;
    * every retry passes the service's rate limiter, so retries never break the rate policy.
    """

    def __init__(self, *args: Any, gate: ServiceGate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate

    def new(self, **kw: Any) -> ServiceRetry:
        kw.setdefault("gate", self.gate)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        errors = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            errors += 1
        if errors == 0:
            return 0.0
        value = self.backoff_factor * (2 ** (errors - 1))
        if self.backoff_jitter:
            value += random.random() * self.backoff_jitter
        return float(max(0.0, min(self.backoff_max, value)))

    def _reason(self, response: Any) -> str:
        if response is not None:
            return f"HTTP {response.status}"
        if self.history and self.history[-1].error is not None:
            return _describe_exception(self.history[-1].error)
        return "error"

    def sleep(self, response: Any = None) -> None:
        label = self.gate.policy.label if self.gate else "service"
        service = self.gate.policy.service if self.gate else ""
        if response is not None and self.gate is not None:
            self.gate.observe(response.headers)  # may raise Throttled (Black)
        retry_after = None
        if self.respect_retry_after_header and response is not None:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        attempt = len(self.history)
        if retry_after is not None and retry_after > self.backoff_max:
            when = (datetime.now() + timedelta(seconds=retry_after)).strftime("%H:%M:%S")
            raise Throttled(label, f"asked to wait {retry_after:.0f} s (Retry-After) after {self._reason(response)}, "
                                   f"longer than this client waits ({self.backoff_max:g} s); try again after {when}",
                            retry_after=retry_after, status=getattr(response, "status", None),
                            retried=_retries_so_far())
        wait = retry_after if retry_after is not None else self.get_backoff_time()
        total = attempt + (self.total if isinstance(self.total, int) else 0)
        state = "busy" if response is not None else "unreachable"
        report(f"{label} {state} ({self._reason(response)}), retrying in {wait:.1f} s (retry {attempt} of {total})",
               service=service, reason=self._reason(response), wait=wait, attempt=attempt, retry_after=retry_after)
        if wait > 0:
            time.sleep(wait)
        counter = _RETRIES.get()
        if counter is not None:
            counter[0] += 1
        if self.gate is not None:
            self.gate.before_send()


def make_retry(policy: ServicePolicy, settings: Settings) -> ServiceRetry:
    """The retry policy of one service under ``settings.http``."""
    http = settings.http
    return ServiceRetry(
        total=http.max_retries,
        connect=None,
        read=None,
        redirect=5,
        status=None,
        allowed_methods=frozenset({"GET", "HEAD", "POST", "OPTIONS"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=http.backoff_factor,
        backoff_jitter=http.backoff_jitter,
        backoff_max=http.backoff_max,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last error response comes back, so its body can explain the failure
        retry_after_max=10**9,  # bounded in ServiceRetry.sleep, which says when to come back instead
        gate=gate_for(policy),
    )


class _GatedAdapter(HTTPAdapter):
    """Passes the gate (block check + rate limit) before the first try and reads throttling headers after."""

    def __init__(self, gate: ServiceGate, retry: ServiceRetry) -> None:
        self.gate = gate
        super().__init__(max_retries=retry)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.gate.before_send()
        response = super().send(request, **kwargs)
        self.gate.observe(response.headers)
        return response


# --------------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------------

_SESSIONS: dict[tuple, requests.Session] = {}
_SESSIONS_LOCK = threading.Lock()


def cache_path(settings: Settings | None = None) -> Path:
    """Where the HTTP cache lives: ``BIOMEDGPT_HOME/http_cache.sqlite``."""
    return (settings or get_settings()).path(CACHE_FILE)


def _corrupt_cache(path: Any, error: BaseException) -> StoreError:
    return StoreError(f"the HTTP cache {path} is unreadable ({error}); it only holds copies of web answers, "
                      f"so delete it (rm {path}*) and it is rebuilt on the next look-up")


def session_for(service: str, settings: Settings | None = None) -> requests.Session:
    """The process-wide cached, retrying, rate-limited ``requests`` session of ``service``."""
    settings = settings or get_settings()
    policy = policy_for(service, settings)
    key = (service, str(settings.home), policy.base_url, settings.offline, policy.per_second,
           settings.http.model_dump_json())
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = _SESSIONS[key] = _build_session(policy, settings)
        return session


def _build_session(policy: ServicePolicy, settings: Settings) -> requests.Session:
    from requests_cache import CachedSession, SQLiteCache

    path = cache_path(settings)
    try:
        backend = SQLiteCache(str(path), wal=True, busy_timeout=30_000)
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
        )
    except sqlite3.DatabaseError as error:
        raise _corrupt_cache(path, error) from None
    gate = gate_for(policy)
    adapter = _GatedAdapter(gate, make_retry(policy, settings))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = settings.http.user_agent
    return session


def reset_sessions() -> None:
    """Close every session and forget every rate-limit/throttling state (tests; a fresh start)."""
    with _SESSIONS_LOCK:
        for session in _SESSIONS.values():
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        _SESSIONS.clear()
    with _GATES_LOCK:
        _GATES.clear()


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
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProtocolError, ReadTimeoutError

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

    ``request`` returns a successful ``requests.Response`` or raises a ``ServiceError`` subclass;
    ``get_json``/``post_json`` also parse the body and drop malformed answers from the cache.
    """

    def __init__(self, service: str, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.policy = policy_for(service, self.settings)
        self.service = service
        self.label = self.policy.label
        self.base_url = self.policy.base_url

    @property
    def session(self) -> requests.Session:
        return session_for(self.service, self.settings)

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
                what: str | None = None) -> requests.Response:
        """Send one request under the policy; ``what`` names the look-up in error messages."""
        what = what or f"{method} {url}"
        counter = [0]
        token = _RETRIES.set(counter)
        try:
            try:
                response = self.session.request(method, url, params=params, data=data, timeout=self.timeout)
            except Throttled:
                raise
            except sqlite3.DatabaseError as error:
                raise _corrupt_cache(cache_path(self.settings), error) from None
            except requests.exceptions.RequestException as error:
                raise self._transport_error(error, url, what, counter[0]) from None
        finally:
            _RETRIES.reset(token)
        retried = counter[0]
        if self.settings.offline and response.status_code == 504 and response.reason == "Not Cached":
            # requests-cache's only_if_cached answer for a miss (errors are never cached, so no real 504 is)
            raise OfflineMiss(self.label, f"offline mode (BIOMEDGPT_OFFLINE=1) and {response.url} is not in the "
                                          f"cache; go online once to fetch it", url=response.url)
        if response.status_code >= 400:
            raise self.explain(response, what, retried)
        return response

    def _transport_error(self, error: BaseException, url: str, what: str, retried: int) -> ServiceError:
        description = _describe_exception(error)
        connect, read = self.timeout
        if description == "read timed out":
            message = f"{what}: no answer within the {read:g} s read timeout"
        elif description == "connect timed out":
            message = f"{what}: could not connect to {urlsplit(url).netloc} within {connect:g} s"
        else:
            message = f"{what}: {description}"
        return ServiceError(self.label, message, url=url, retried=retried)

    def json_of(self, response: requests.Response, what: str) -> Any:
        """The parsed JSON body; malformed bodies are dropped from the cache and raise ServiceError."""
        try:
            return response.json()
        except ValueError:
            # Never keep garbage: the next call must ask again instead of replaying it.
            self._forget(response)
            excerpt = " ".join((response.text or "")[:80].split())
            raise ServiceError(self.label, f"{what}: the answer was not valid JSON ({excerpt!r})",
                               url=response.url, status=response.status_code) from None

    def _forget(self, response: requests.Response) -> None:
        key = getattr(response, "cache_key", None)
        cache = getattr(self.session, "cache", None)
        if key and cache is not None:
            try:
                cache.delete(key)
            except Exception:  # noqa: BLE001 - forgetting is best effort; the error below matters more
                pass

    def get(self, url: str, params: dict | None = None, what: str | None = None) -> requests.Response:
        return self.request("GET", url, params=params, what=what)

    def get_json(self, url: str, params: dict | None = None, what: str | None = None) -> Any:
        what = what or f"GET {url}"
        return self.json_of(self.request("GET", url, params=params, what=what), what)

    def post_json(self, url: str, data: dict, what: str | None = None) -> Any:
        what = what or f"POST {url}"
        return self.json_of(self.request("POST", url, data=data, what=what), what)

    def get_text(self, url: str, params: dict | None = None, what: str | None = None) -> str:
        return self.request("GET", url, params=params, what=what).text

    def post_text(self, url: str, data: dict, what: str | None = None) -> str:
        return self.request("POST", url, data=data, what=what).text

