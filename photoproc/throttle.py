"""The token bucket behind progress throttling, on a clock the caller chooses.

A bucket holds up to ``burst`` tokens and gains one every ``interval`` seconds;
spending one lets an event through. Tests drive it with a fake clock, so the
throttling rule is checked without measuring time (see tests/test_throttle.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "TokenBucket"]

Clock = Callable[[], float]


class TokenBucket:
    """At most one event per ``interval`` on average, bursts of up to ``burst``."""

    def __init__(self, interval: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        if interval <= 0 or burst < 1:
            raise ValueError("a token bucket needs interval > 0 and burst >= 1")
        self.interval = interval
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._refilled = clock()

    def tokens(self, now: float | None = None) -> float:
        """The tokens there are at ``now`` (default: the clock's now), refilling first."""
        now = self.clock() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) / self.interval)
        self._refilled = now
        return self._tokens

    def ready(self, now: float | None = None) -> bool:
        """Whether a whole token is there to spend."""
        return self.tokens(now) >= 1.0

    def spend(self) -> None:
        """One event went out (a final state goes out even on an empty bucket)."""
        self._tokens = max(0.0, self._tokens - 1.0)

    def wait(self, now: float | None = None) -> float:
        """Seconds until the next whole token (0 when one is there)."""
        return max(0.0, (1.0 - self.tokens(now)) * self.interval)
