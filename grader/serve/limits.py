"""The limits that keep one client, or many at once, from using up the server: uploads per client per hour,
and the disk uploads may take while they wait."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

HOUR = 3600.0


class RateLimit:
    """At most `per_hour` uploads per client in any hour (a sliding window)."""

    def __init__(self, per_hour: int, *, clock=time.monotonic) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 when `client` may upload now (the upload is counted), else the seconds until it may."""
        now = self._clock()
        with self._lock:
            times = self._seen.setdefault(client, deque())
            while times and times[0] <= now - HOUR:
                times.popleft()
            if len(times) >= self.per_hour:
                return max(1.0, math.ceil(times[0] + HOUR - now))
            times.append(now)
            if len(self._seen) > 10_000:  # forget clients with nothing in the window
                self._seen = {key: value for key, value in self._seen.items() if value and value[-1] > now - HOUR}
            return 0.0

    def give_back(self, client: str) -> None:
        """Uncount `client`'s latest upload: it was not taken after all (too large, not a model file)."""
        with self._lock:
            times = self._seen.get(client)
            if times:
                times.pop()


class Spool:
    """The bytes uploads hold on disk, against a cap: a reservation is made as bytes arrive, released when the
    file is deleted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        """Take `size` more bytes; False (nothing taken) when that would pass the cap."""
        with self._lock:
            if self.used + size > self.cap:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used = max(0, self.used - size)
