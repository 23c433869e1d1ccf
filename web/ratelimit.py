"""Token buckets: a per-source limit for public webhooks and a per-socket frame limit.

Over the limit gets a 429 (webhooks; providers retry) or an error frame and, for a
client that keeps flooding, a close (web chat), never a stall for the others.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class TokenBucket:
    """`capacity` requests at once, refilled at `rate` per second."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, *, capacity: float, rate: float, now: float | None = None) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> bool:
        """Spend one token if there is one."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class KeyedLimiter:
    """One bucket per key (source address), the least recently seen evicted past `max_keys`."""

    def __init__(self, *, capacity: float, rate: float, max_keys: int = 10_000) -> None:
        self.capacity = capacity
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Whether `key` may make one more request now."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(capacity=self.capacity, rate=self.rate, now=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)
