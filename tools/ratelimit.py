"""A rate limit shared by threads and processes: ``SharedRateLimiter(path, "pubchem", [(5, 1.0), (400, 60.0)])``.

Why a file: every thread, every ``Assistant`` and every process that uses the same ``BIOMEDGPT_HOME`` must
draw from the same windows, or two processes each keeping to 5 requests/s send 10. The log of sent
requests is pyrate-limiter's sliding-log ``SQLiteBucket`` behind a file lock; the same file keeps the
throttling state (a rate scale and a blocked-until time) that a server can set (``tools/throttling.py``).
Nothing here knows a service: the windows, the table name and the scale come from the caller.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pyrate_limiter import Rate, RateItem
from pyrate_limiter.buckets import SQLiteBucket

from biomedgpt.core.cancel import sleep as cancellable_sleep
from biomedgpt.tools.errors import StoreError


class SharedRateLimiter:
    """Sliding-window limits over several windows, e.g. ``[(5, 1.0), (400, 60.0)]``, shared by processes.

    The log of sent requests is pyrate-limiter's ``SQLiteBucket`` in ``path`` (one table per service
    and host) behind a file lock, so every process and thread that uses the same file draws from the
    same windows. ``acquire(weight)`` records ``weight`` sends (Yellow sends at weight 2, Red at 5:
    a fraction of the rate, for everybody at once). The same file holds the throttling state
    (scale, blocked-until) that PubChem's header sets.
    """

    def __init__(self, path: Path, table: str, windows: list[tuple[int, float]], *, margin: float = 0.0) -> None:
        if not windows or any(limit < 1 or period <= 0 for limit, period in windows):
            raise ValueError(f"rate-limit windows must be (limit ≥ 1, period > 0) pairs, got {windows!r}")
        # pyrate-limiter wants windows of increasing length, limit and strictness; a window that can never
        # bind is dropped (a shorter one allowing as much as a longer one, or a longer one no stricter than
        # the shorter: PubChem's 400/min never binds at 5/s).
        kept: list[tuple[int, float]] = []
        for limit, period in sorted(((int(lim), float(per)) for lim, per in windows), key=lambda w: (w[1], w[0])):
            while kept and limit <= kept[-1][0]:
                kept.pop()
            if kept and limit / (period + margin) >= kept[-1][0] / (kept[-1][1] + margin):
                continue
            kept.append((limit, period))
        self.windows = kept
        self.path = Path(path)
        self.table = table
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rates = [Rate(limit, int(round((period + margin) * 1000))) for limit, period in self.windows]
        try:
            self.bucket = SQLiteBucket.init_from_file(rates, table=table, db_path=str(self.path), use_file_lock=True)
            with self.bucket.lock:
                self.bucket.conn.execute("CREATE TABLE IF NOT EXISTS throttle (key TEXT PRIMARY KEY, scale REAL, "
                                         "blocked_until REAL, reason TEXT)")
                self.bucket.conn.commit()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"the rate-limit file {self.path} is unreadable ({error}); delete it "
                             f"(rm {self.path}*) and it is rebuilt") from None
        self._puts = 0

    @property
    def smallest(self) -> int:
        return min(limit for limit, _ in self.windows)

    def weight_for(self, scale: float) -> int:
        return max(1, min(self.smallest, int(round(1.0 / max(scale, 1e-3)))))

    def limits(self, scale: float = 1.0) -> list[tuple[int, float]]:
        """The windows in force at ``scale`` (Yellow 0.5, Red 0.2)."""
        weight = self.weight_for(scale)
        return [(max(1, limit // weight), period) for limit, period in self.windows]

    def acquire(self, scale: float = 1.0, deadline: float | None = None) -> float:
        """Wait for a free slot (``deadline``: a ``time.monotonic()`` it must come before); returns the seconds waited.

        Raises :class:`NoSlot` with the wait when the next slot comes after ``deadline``.
        """
        weight = self.weight_for(scale)
        waited = 0.0
        while True:
            with self.bucket.lock:
                item = RateItem(self.table, self.bucket.now(), weight=weight)
                if self.bucket.put(item):
                    self._puts += 1
                    if self._puts % 64 == 0:
                        self.bucket.leak(self.bucket.now())
                    return waited
                wait_ms = self.bucket.waiting(item)
                failing = self.bucket.failing_rate
            wait = max(0.0, wait_ms / 1000.0) + 0.005
            if deadline is not None and time.monotonic() + wait > deadline:
                raise NoSlot(wait, failing.limit if failing else 0, failing.interval / 1000.0 if failing else 0.0)
            cancellable_sleep(wait)  # Ctrl-C ends the wait (core/cancel.py)
            waited += wait

    # -- throttling state ------------------------------------------------------------------------
    def state(self) -> tuple[float, float, str]:
        """``(scale, blocked_until as time.time(), reason)`` for this service and host."""
        with self.bucket.lock:
            row = self.bucket.conn.execute("SELECT scale, blocked_until, reason FROM throttle WHERE key = ?",
                                           (self.table,)).fetchone()
        return (float(row[0]), float(row[1] or 0.0), str(row[2] or "")) if row else (1.0, 0.0, "")

    def set_state(self, *, scale: float | None = None, blocked_until: float | None = None,
                  reason: str | None = None) -> tuple[float, float, str]:
        """Update the throttling state (a block only ever extends); returns the previous state."""
        with self.bucket.lock:
            previous = self.state()
            new_scale = previous[0] if scale is None else scale
            new_until = previous[1] if blocked_until is None else max(previous[1], blocked_until)
            new_reason = previous[2] if reason is None else reason
            self.bucket.conn.execute("INSERT OR REPLACE INTO throttle (key, scale, blocked_until, reason) "
                                     "VALUES (?, ?, ?, ?)", (self.table, new_scale, new_until, new_reason))
            factor = -(-self.weight_for(new_scale) // self.weight_for(previous[0]))  # ceil
            if factor > 1:
                # Slowing down: the requests already in the windows count at the new weight too, so the
                # first window after the change holds the lower rate as well.
                since = self.bucket.now() - int((self.windows[-1][1] + 1) * 1000)
                rows = self.bucket.conn.execute(f'SELECT name, item_timestamp FROM "{self.table}" '
                                                f"WHERE item_timestamp >= ?", (since,)).fetchall()
                self.bucket.conn.executemany(f'INSERT INTO "{self.table}" (name, item_timestamp) VALUES (?, ?)',
                                             rows * (factor - 1))
            self.bucket.conn.commit()
        return previous

    def close(self) -> None:
        try:
            self.bucket.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


class NoSlot(Exception):
    """The next free slot comes after the caller's deadline: ``wait`` seconds away, in a ``limit``/``period`` window."""

    def __init__(self, wait: float, limit: int, period: float) -> None:
        self.wait, self.limit, self.period = wait, limit, period
        super().__init__(wait)
