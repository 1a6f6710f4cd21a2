"""Seeded fault injection: errors, latency, and callback misbehaviour.

``FaultConfig`` applies its top-level ``error_rate``/``errors``/``latency`` to ``operations`` (None = every
operation) and ``per_operation`` overrides those for named operations. Error kinds:

- ``"throttle"``: COS/CI answer 503 SlowDown; API 3.0 answers RequestLimitExceeded.
- ``"5xx"``: COS/CI answer 500 InternalError; API 3.0 answers InternalError (HTTP 200, as the real service does).
- ``"reset"``: the connection is closed without an answer.

``fixed_latency`` (seconds) is the benchmark mode: every call takes that long and ``skip_pixel_work`` is true, so
handlers return placeholder outputs without image work. The random stream is seeded: the same config and the same
sequence of calls give the same faults.

``rate_limit`` (a :class:`~.pacing.RateLimit`) throttles each (bucket, operation family) with a token bucket, and
``latency_model`` (a :class:`~.pacing.LatencyModel`) replaces the fixed ``latency`` with seeded log-normal delays.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .pacing import LatencyModel, LatencySampler, RateLimit, RateLimiter

ERROR_KINDS = ("throttle", "5xx", "reset")


@dataclass
class OperationFaults:
    error_rate: float = 0.0
    errors: tuple[str, ...] = ERROR_KINDS
    latency: float = 0.0


@dataclass
class FaultConfig:
    seed: int = 0
    error_rate: float = 0.0
    errors: tuple[str, ...] = ERROR_KINDS
    latency: float = 0.0
    operations: tuple[str, ...] | None = None
    per_operation: dict[str, OperationFaults] = field(default_factory=dict)
    callback_drop_rate: float = 0.0
    callback_duplicate_rate: float = 0.0
    callback_delay: tuple[float, float] = (0.0, 0.0)
    callback_reorder: bool = False
    fixed_latency: float | None = None
    rate_limit: RateLimit | None = None
    latency_model: LatencyModel | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rate_limit, dict):
            self.rate_limit = RateLimit(**self.rate_limit)
        if isinstance(self.latency_model, dict):
            self.latency_model = LatencyModel(**self.latency_model)
        self.errors = tuple(self.errors)
        bad = [e for e in self.errors if e not in ERROR_KINDS]
        if bad:
            raise ValueError(f"FaultConfig.errors: unknown kinds {bad}; allowed {list(ERROR_KINDS)}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"FaultConfig.error_rate={self.error_rate!r}: must be within [0, 1]")
        if self.operations is not None:
            self.operations = tuple(self.operations)
        self.callback_delay = (float(self.callback_delay[0]), float(self.callback_delay[1]))
        self.per_operation = {
            op: (v if isinstance(v, OperationFaults) else OperationFaults(**v)) for op, v in self.per_operation.items()
        }
        for v in self.per_operation.values():
            v.errors = tuple(v.errors)

    def for_operation(self, operation: str) -> OperationFaults:
        if operation in self.per_operation:
            return self.per_operation[operation]
        if self.operations is None or operation in self.operations:
            return OperationFaults(self.error_rate, self.errors, self.latency)
        return OperationFaults()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from JSON-like data (the CLI ``--faults FILE``); unknown keys are refused."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"FaultConfig: unknown keys {sorted(unknown)}; allowed {sorted(names)}")
        kwargs = dict(data)
        if "callback_delay" in kwargs:
            d = kwargs["callback_delay"]
            kwargs["callback_delay"] = (float(d), float(d)) if isinstance(d, (int, float)) else tuple(d)
        return cls(**kwargs)


@dataclass
class FaultDecision:
    kind: str | None  # None, "throttle", "5xx", "reset"
    latency: float


@dataclass
class CallbackPlan:
    drop: bool
    copies: int
    delay: float


class FaultInjector:
    """Thread-safe holder of the current config and its seeded random stream."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.clock: Callable[[], float] = time.monotonic  # the rate limiter's clock (tests replace it)
        self.set(config)

    @property
    def config(self) -> FaultConfig:
        return self._config

    def set(self, config: FaultConfig | None) -> None:
        with self._lock:
            self._config = config or FaultConfig()
            self._rng = random.Random(self._config.seed)
            self._cb_rng = random.Random(self._config.seed + 1)
            limit, model = self._config.rate_limit, self._config.latency_model
            self._limiter = RateLimiter(limit, lambda: self.clock()) if limit is not None else None
            self._latency = LatencySampler(model) if model is not None else None

    def reset(self) -> None:
        self.clock = time.monotonic
        self.set(None)

    @property
    def skip_pixel_work(self) -> bool:
        return self._config.fixed_latency is not None

    @property
    def callback_reorder(self) -> bool:
        return self._config.callback_reorder

    def decide(self, operation: str, family: str = "", bucket: str | None = None) -> FaultDecision:
        """The fault (if any) and the delay for one request of ``operation`` (in ``family``, on ``bucket``)."""
        cfg = self._config
        sampler, limiter = self._latency, self._limiter
        if limiter is not None and not limiter.admit(family, bucket):
            return FaultDecision("throttle", sampler.sample() if sampler is not None else 0.0)
        if cfg.fixed_latency is not None:
            return FaultDecision(None, sampler.sample() if sampler is not None else cfg.fixed_latency)
        of = cfg.for_operation(operation)
        latency = sampler.sample() if sampler is not None else of.latency
        if of.error_rate <= 0.0 or not of.errors:
            return FaultDecision(None, latency)
        with self._lock:
            hit = self._rng.random() < of.error_rate
            kind = self._rng.choice(of.errors) if hit else None
        return FaultDecision(kind, latency)

    def callback_plan(self) -> CallbackPlan:
        cfg = self._config
        with self._lock:
            drop = cfg.callback_drop_rate > 0 and self._cb_rng.random() < cfg.callback_drop_rate
            dup = cfg.callback_duplicate_rate > 0 and self._cb_rng.random() < cfg.callback_duplicate_rate
            lo, hi = cfg.callback_delay
            delay = self._cb_rng.uniform(lo, hi) if hi > 0 else 0.0
        return CallbackPlan(drop=drop, copies=2 if dup else 1, delay=delay)
