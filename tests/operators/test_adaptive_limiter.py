"""AdaptiveLimiter (operators/_batch.py): the AIMD rules the batch runner relies on, driven directly with a sequence
of outcomes (no threads, no clock): one cut per window of calls, +1 per window of successes, convergence to a
service's capacity with a bounded share of throttled calls."""

from __future__ import annotations

import itertools
from typing import Any

from airflow_provider_tencent_ci.exceptions import TencentCloudServerError, TencentCloudThrottlingError
from airflow_provider_tencent_ci.hooks.retry import RetryPolicy, call_with_retry
from airflow_provider_tencent_ci.operators._batch import AdaptiveLimiter, SourceItem, run_items


def test_a_burst_of_throttles_from_one_window_cuts_once() -> None:
    lim = AdaptiveLimiter(32)
    windows = [lim.acquire() for _ in range(32)]
    for w in windows:
        lim.release(w, throttled=True)
    assert lim.decreases == 1
    assert lim.limit == 24  # 32 * 0.75, not 32 halved 32 times down to 1
    assert lim.in_flight == 0


def test_a_throttle_of_a_call_started_after_the_cut_cuts_again() -> None:
    lim = AdaptiveLimiter(32)
    old = lim.acquire()
    first = lim.acquire()
    lim.release(first, throttled=True)  # cut: 32 -> 24
    new = lim.acquire()  # starts in the new window
    lim.release(old, throttled=True)  # started before the cut: same congestion event, ignored
    assert (lim.limit, lim.decreases) == (24, 1)
    lim.release(new, throttled=True)
    assert (lim.limit, lim.decreases) == (18, 2)


def test_the_limit_never_drops_below_one() -> None:
    lim = AdaptiveLimiter(2)
    for _ in range(5):
        lim.release(lim.acquire(), throttled=True)
    assert lim.limit == 1


def test_additive_increase_is_one_per_window_of_successes_up_to_the_maximum() -> None:
    lim = AdaptiveLimiter(10)
    lim.release(lim.acquire(), throttled=True)  # 10 -> 7
    assert lim.limit == 7
    for _ in range(6):
        lim.release(lim.acquire(), throttled=False)
    assert lim.limit == 7  # not yet a full window (7 successes)
    lim.release(lim.acquire(), throttled=False)
    assert lim.limit == 8
    for _ in range(1000):
        lim.release(lim.acquire(), throttled=False)
    assert lim.limit == 10  # capped at max_concurrency


def test_converges_to_the_service_capacity_with_few_throttles() -> None:
    """A service that takes ``capacity`` calls per round and throttles the rest. Every round the runner fills the
    limit; after a warm-up the limit stays in [0.75 * capacity - 1, capacity + 1] and under 5 % of calls are
    throttled."""
    capacity, rounds = 20, 400
    lim = AdaptiveLimiter(64)
    limits: list[int] = []
    calls = throttled = 0
    for n in range(rounds):
        started = [lim.acquire() for _ in range(lim.limit)]
        for i, window in enumerate(started):
            over = i >= capacity
            lim.release(window, throttled=over)
            if n >= rounds // 4:
                calls += 1
                throttled += over
        limits.append(lim.limit)
    steady = limits[rounds // 4 :]
    assert min(steady) >= int(0.75 * capacity) - 1
    assert max(steady) <= capacity + 1
    assert throttled / calls <= 0.05
    assert sum(steady) / len(steady) >= 0.8 * capacity  # the average stays near the capacity, not at half of it


def _hook_call_failing_twice_with(error: Exception) -> Any:
    """A batch item whose hook call (the real retry path) fails twice with ``error`` and then succeeds."""
    attempts = itertools.count()

    def call() -> str:
        if next(attempts) < 2:
            raise error
        return "processed"

    def fn(item: SourceItem) -> dict[str, str]:
        policy = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)
        return {"status": call_with_retry(call, policy=policy, operation="ImageProcess")}

    return fn


def test_throttles_the_hook_retried_by_itself_still_cut_the_limit() -> None:
    throttle = TencentCloudThrottlingError("slow down", code="SlowDown", status_code=503)
    outcome = run_items(
        [SourceItem(kind="cos", bucket="b", key="k")], _hook_call_failing_twice_with(throttle), max_concurrency=8
    )
    assert [r["status"] for r in outcome.results] == ["processed"]  # the call itself succeeded ...
    assert outcome.limit_cuts == 1  # ... and its two throttled attempts (one window) cut the limit once


def test_other_retried_errors_do_not_cut_the_limit() -> None:
    server_error = TencentCloudServerError("oops", code="InternalError", status_code=500)
    outcome = run_items(
        [SourceItem(kind="cos", bucket="b", key="k")], _hook_call_failing_twice_with(server_error), max_concurrency=8
    )
    assert [r["status"] for r in outcome.results] == ["processed"]
    assert outcome.limit_cuts == 0
