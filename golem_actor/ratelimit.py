"""Per-source limits shared by every HTTP server of the project: token buckets and
counts of requests in flight.

Why: the node's API, the port-check server and the discovery server all refuse a source
that asks too much, the same way. A bucket gives one source `burst` requests at once and
then `rate_per_minute` on average; past that the answer is 429 with the seconds to wait.
`InFlight` bounds how much slow work one source has running at once. Time is passed in
(`now`), so a server can use trio's clock and tests a manual one. Memory is bounded: full
buckets carry no information and are dropped first, and past `max_sources` the least
recently seen source is forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["InFlight", "RateLimiter"]


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    def __init__(self, rate_per_minute: float, burst: int, *, max_sources: int = 10_000) -> None:
        if rate_per_minute <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate, burst and max_sources must be positive")
        self.per_second = rate_per_minute / 60.0
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: dict[str, _Bucket] = {}  # insertion order = least recently seen first

    def __len__(self) -> int:
        return len(self._buckets)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.stamp)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.per_second)
        bucket.stamp = now

    def acquire(self, key: str, now: float) -> float | None:
        """Take one token for `key`: None when allowed, else the seconds to wait."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
            self._make_room(now)
        else:
            self._refill(bucket, now)
        self._buckets[key] = bucket  # most recently seen last
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.per_second

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self.max_sources:
            return
        for key, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.burst:
                del self._buckets[key]
        while len(self._buckets) >= self.max_sources:
            del self._buckets[next(iter(self._buckets))]

    @staticmethod
    def retry_after_header(wait: float) -> str:
        """A whole number of seconds, never 0 (HTTP's Retry-After is integral)."""
        return str(max(1, math.ceil(wait)))


class InFlight:
    """How many requests each source has running; `full` once it has `limit` of them.

    Only sources with work running are kept, so memory follows the work, not the callers.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the limit must be positive")
        self.limit = limit
        self._running: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._running)

    def full(self, key: str) -> bool:
        return self._running.get(key, 0) >= self.limit

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Count one request of `key` as running for the `with` block."""
        self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
