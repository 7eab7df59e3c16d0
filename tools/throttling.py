"""How each service may be called, and the gate every request passes: ``ServiceGate(policy_for("pubchem", s), rate_path(s))``.

- **Policies** (:func:`policy_for`): per service its base URL, rate (PubChem ≤5/s and ≤400/min, UniProt
  5/s, E-utilities 3/s or 10/s with an API key), cache lifetime and throttling response, from settings.
- **PubChem's ``X-Throttling-Control``** header (:meth:`ServiceGate.observe`): Yellow or Red lowers the
  effective rate of every process (and is reported); Black stops with :class:`Throttled` and blocks
  further sends from every process until the wait is over.
- **The gate** (:class:`ServiceGate`, one per HTTP session, built with it by ``tools/http.build_session``): the
  block check and the shared rate limit (``tools/ratelimit.py``) before each send; the header read after it.

Why no registry of gates: everything a gate knows (the sliding-log windows, the scale, the blocked-until time)
lives in ``BIOMEDGPT_HOME/ratelimit.sqlite`` behind a file lock, so every gate on that file (each ``Services``,
each client, each process) draws from the same windows and sees the same Black or Yellow; a gate holds only a
handle on the file. The generic client that sends the requests is ``tools/http.py``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from urllib3.util.retry import Retry

from biomedgpt.core.settings import Settings, get_settings
from biomedgpt.tools.errors import Throttled
from biomedgpt.tools.progress import report
from biomedgpt.tools.ratelimit import NoSlot, SharedRateLimiter

SERVICES = ("pubchem", "uniprot", "eutils")
RATE_FILE = "ratelimit.sqlite"


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


_COLOURS = {"green": 0, "yellow": 1, "red": 2, "black": 3}
_THROTTLE_RE = re.compile(r"([A-Za-z ]+?)\s+status:\s*([A-Za-z]+)\s*(?:\((\d+)%\))?")


def parse_throttling(header: str) -> list[tuple[str, str, int | None]]:
    """``"Request Count status: Green (0%), ..."`` → ``[("Request Count", "Green", 0), ...]``."""
    out = []
    for name, colour, percent in _THROTTLE_RE.findall(header or ""):
        out.append((name.strip(" ,"), colour.capitalize(), int(percent) if percent else None))
    return out


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, Retry().parse_retry_after(value))
    except Exception:  # noqa: BLE001 - a malformed header just means "no advice"
        return None


def _table_name(policy: ServicePolicy) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{policy.service}_{policy.host}")


def _window_words(limit: int, period: float) -> str:
    if abs(period - 60.0) < 1.0:
        return f"{limit} requests per minute"
    if abs(period - 1.0) < 0.5:
        return f"{limit} requests per second"
    return f"{limit} requests per {period:g} s"


class ServiceGate:
    """Everything shared by all requests to one service on one host: the limiter and the block state."""

    def __init__(self, policy: ServicePolicy, path: Path) -> None:
        self.policy = policy
        windows = [(policy.per_second, 1.0)]
        if policy.per_minute:
            windows.append((policy.per_minute, 60.0))
        self.limiter = SharedRateLimiter(path, _table_name(policy), windows, margin=policy.window_margin)

    def close(self) -> None:
        """Close this gate's handle on the rate-limit file (the shared state stays in the file)."""
        self.limiter.close()

    def _blocked_error(self, until: float, reason: str, retried: int) -> Throttled:
        remaining = max(0.0, until - time.time())
        when = (datetime.now() + timedelta(seconds=remaining)).strftime("%H:%M:%S")
        return Throttled(self.policy.label,
                         f"this client is blocked ({reason}); retry in {remaining:.0f} s (after {when})",
                         retry_after=remaining, retried=retried)

    def before_send(self, deadline: float | None = None, *, what: str = "", retried: int = 0) -> None:
        """Called right before each request goes on the wire (first tries, retries and redirects alike); ``what``
        names the look-up and ``retried`` counts its retries so far, for the error messages."""
        scale, until, reason = self.limiter.state()
        if time.time() < until:
            raise self._blocked_error(until, reason, retried)
        try:
            self.limiter.acquire(scale, deadline)
        except NoSlot as full:
            what = f"{what}: " if what else ""
            window = _window_words(full.limit, round(full.period - self.policy.window_margin, 1))
            raise Throttled(self.policy.label,
                            f"{what}the rate limit ({window}, shared by every biomedgpt process using this "
                            f"BIOMEDGPT_HOME) is used up; the next request may go in {full.wait:.0f} s, after this "
                            f"look-up's deadline ([http] deadline)", retry_after=full.wait,
                            retried=retried) from None

    def observe(self, headers: Any, *, retried: int = 0) -> None:
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
            wait = retry_after_seconds(headers.get("Retry-After")) or throttle.blocked_wait
            until = time.time() + wait
            self.limiter.set_state(blocked_until=until, reason=f"X-Throttling-Control: {header}")
            report(f"{self.policy.label} has blocked this client (throttling status Black); "
                   f"retry in {wait:.0f} s", service=self.policy.service, status="Black", wait=wait)
            raise self._blocked_error(until, f"X-Throttling-Control: {header}", retried)
        scale = {"yellow": throttle.yellow_scale, "red": throttle.red_scale}.get(colour, 1.0)
        previous = self.limiter.set_state(scale=scale)[0]
        if scale < 1.0 and scale != previous:
            per_second = self.limiter.limits(scale)[0][0]
            report(f"{self.policy.label} asks to slow down ({worst[0]} status {worst[1]}); "
                   f"sending at most {per_second} request(s)/s", service=self.policy.service,
                   status=worst[1], per_second=per_second, header=header)
        elif scale >= 1.0 and previous < 1.0:
            report(f"{self.policy.label} throttling back to Green; full rate again", service=self.policy.service,
                   status="Green")


def rate_path(settings: Settings | None = None) -> Path:
    """Where the shared rate-limit and throttling state lives: ``BIOMEDGPT_HOME/ratelimit.sqlite``."""
    return (settings or get_settings()).path(RATE_FILE)
