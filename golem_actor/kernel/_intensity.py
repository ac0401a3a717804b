"""Restart intensity: one window of restart times shared by all children of a supervisor.

More than `max_restarts` restarts within `period` seconds means the supervisor gives up
(OTP's MaxR/MaxT). Pure logic: the caller passes the clock reading.
"""

from __future__ import annotations

from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    def __init__(self, max_restarts: int, period: float) -> None:
        if max_restarts < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 restarts in a period > 0 seconds")
        self.max_restarts = max_restarts
        self.period = period
        self._times: deque[float] = deque()

    def _forget_before(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.period:
            self._times.popleft()

    def allow(self, now: float) -> bool:
        """Record a restart at `now`; False when it is one too many for the window."""
        self._forget_before(now)
        self._times.append(now)
        return len(self._times) <= self.max_restarts

    def in_window(self, now: float) -> int:
        self._forget_before(now)
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()
