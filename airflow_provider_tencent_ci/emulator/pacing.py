"""How fast the emulated service answers: token-bucket rate limits and a seeded latency distribution.

- :class:`RateLimit`: one token bucket per (bucket, operation family); a request finding its bucket empty gets the
  documented throttling answer (COS/CI ``503 SlowDown``, API 3.0 ``RequestLimitExceeded``; see ``faults.py``).
  Families: ``image`` (synchronous image processing), ``objects`` (COS object and bucket calls), ``jobs`` (CI job
  API), ``bda`` (API 3.0 calls). The clock is injectable so tests can refill a bucket without waiting.
- :class:`LatencyModel`: log-normal around ``median`` seconds (``sigma`` sets the tail), capped, seeded: the same
  model and the same sequence of calls give the same delays.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FAMILIES = ("image", "objects", "jobs", "bda")


@dataclass
class RateLimit:
    """``rate`` requests per second per (bucket, family), with bursts up to ``burst`` (default: ``max(1, rate)``)."""

    rate: float
    burst: float | None = None
    families: tuple[str, ...] | None = None  # None: every family

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"RateLimit.rate={self.rate!r}: must be a finite number > 0 (requests per second)")
        if self.burst is None:
            self.burst = max(1.0, float(self.rate))
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"RateLimit.burst={self.burst!r}: must be a finite number >= 1")
        if self.families is not None:
            self.families = tuple(self.families)
            unknown = sorted(set(self.families) - set(FAMILIES))
            if unknown:
                raise ValueError(f"RateLimit.families: unknown {unknown}; allowed {list(FAMILIES)}")

    def applies_to(self, family: str) -> bool:
        return self.families is None or family in self.families


class RateLimiter:
    """Token buckets for one :class:`RateLimit`. Thread-safe."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def admit(self, family: str, bucket: str | None) -> bool:
        """Take one token from the (bucket, family) bucket; False when it is empty (the request is throttled)."""
        if not self.limit.applies_to(family):
            return True
        capacity = float(self.limit.burst or 1.0)
        key = (bucket or "", family)
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * self.limit.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            return True


@dataclass
class LatencyModel:
    """Log-normal delays: ``median`` seconds, shape ``sigma`` (0 = always the median), at most ``cap`` seconds."""

    median: float
    sigma: float = 0.5
    cap: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median) and self.median >= 0):
            raise ValueError(f"LatencyModel.median={self.median!r}: must be a finite number >= 0 (seconds)")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"LatencyModel.sigma={self.sigma!r}: must be a finite number >= 0")
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap >= 0):
            raise ValueError(f"LatencyModel.cap={self.cap!r}: must be a finite number >= 0 (seconds)")


class LatencySampler:
    """Seeded draws from a :class:`LatencyModel`. Thread-safe."""

    def __init__(self, model: LatencyModel) -> None:
        self.model = model
        self._rng = random.Random(model.seed)
        self._lock = threading.Lock()

    def sample(self) -> float:
        m = self.model
        if m.median == 0:
            return 0.0
        with self._lock:
            value = self._rng.lognormvariate(math.log(m.median), m.sigma)
        return min(value, m.cap) if m.cap is not None else value
