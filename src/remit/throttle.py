"""Failed sign-ins per client address: a burst is answered, then refused until its window passes.

One limiter serves every way of failing to prove who one is: a bad bearer token at the API edge
(``api/edge.py``) and, later, a wrong password at the portal. Each key (a client address) may
fail ``limit`` times in a window that opens with its first failure; past that, ``fail`` answers
how long to wait instead of counting, until the window closes. A fixed window, not a sliding one:
a client that keeps failing is let through ``limit`` times per window, and the memory per key is
two numbers.

Memory is bounded: at most ``max_keys`` addresses are held, the oldest window is forgotten first
(and so are windows that have passed). Forgetting lets a client that owns more addresses than
``max_keys`` start over sooner; it never lets a held address through early while it is held.

The key is what the caller says it is; behind a reverse proxy that is the proxy's address unless
the server is told to trust ``X-Forwarded-For`` from it (docs/decisions/0018).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable

from remit.clock import Clock, utcnow


class FailureLimiter:
    """At most ``limit`` failures per key per window of ``window_seconds`` (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Clock = utcnow,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window = window_seconds
        self.max_keys = max_keys
        self._seconds: Callable[[], float] = lambda: clock().timestamp()
        # key -> [start of its window, failures in it]; in order of window start (a key whose
        # window restarts is moved to the end), so the oldest windows are at the front.
        self._windows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def fail(self, key: str) -> float | None:
        """Count one failure of ``key``; or, if its burst is spent, the seconds left to wait
        (nothing is counted then)."""
        now = self._seconds()
        with self._lock:
            self._forget_passed(now)
            entry = self._windows.get(key)
            if entry is None or now - entry[0] >= self.window:
                self._windows.pop(key, None)
                if len(self._windows) >= self.max_keys:
                    del self._windows[next(iter(self._windows))]
                self._windows[key] = [now, 1]
                return None
            if entry[1] >= self.limit:
                return entry[0] + self.window - now
            entry[1] += 1
            return None

    def wait(self, key: str) -> float | None:
        """The seconds ``key`` must still wait, or None if it may try (nothing is counted)."""
        now = self._seconds()
        with self._lock:
            entry = self._windows.get(key)
            if entry is None or now - entry[0] >= self.window or entry[1] < self.limit:
                return None
            return entry[0] + self.window - now

    def _forget_passed(self, now: float) -> None:
        windows = self._windows
        while windows:
            key = next(iter(windows))
            if now - windows[key][0] < self.window:
                return
            del windows[key]


def client_key(address: str) -> str:
    """The key a client address counts under: an IPv4 address as it is, an IPv6 address by its
    /64 (one host usually holds a whole /64, so counting addresses one by one would let it
    start over as often as it likes, and push other keys out of the table)."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return str(found.ipv4_mapped)
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found)
