"""A token bucket: the bound on how fast one connection may send messages."""

from __future__ import annotations


class TokenBucket:
    """Allow *rate* events per second on average, with bursts up to *burst*.

    Time is passed in by the caller, which keeps this class free of clocks
    and easy to test.
    """

    def __init__(self, rate: float, burst: float, now: float):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one; say whether the event is allowed."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
