"""A per-process poller that coalesces CI job queries from many triggers.

The triggerer runs every trigger of a process in one asyncio loop. Without coalescing, N deferred tasks mean N
``GET /jobs/<id>`` requests per poll interval; CI accepts several ids per request (``GET /jobs/<id1,...,idK>``), so
triggers that share a connection, region and bucket subscribe here instead and one poll loop per key asks for up to
K jobs per request and fans the results out to every waiting trigger. 10,000 waiting jobs cost ceil(10,000 / K)
requests per cycle, through one hook (one HTTP client) per key.

Scheduling: a new subscription waits until its burst of subscriptions pauses (``SETTLE_SECONDS``; a triggerer
starting or taking over thousands of triggers creates them one after another) and is then due at once, so a
burst is first polled in one cycle after it, not by cycles running in the middle of it. Each subscription has its
own interval and due time, kept in a min-heap of (due time, subscription);
the loop wakes when the earliest subscription is due and then also takes every subscription that falls due within
half a tick (the shortest interval), so subscribers that started at different moments converge on the same cycles
and share requests. A wake-up examines only the subscriptions it takes (plus stale heap entries it discards):
never the whole fleet, which made starting 10,000 triggers O(N^2). A closed subscription, or one whose due time
moved (error back-off), leaves a stale entry that is skipped when it surfaces (lazy deletion); the heap is
rebuilt when stale entries outnumber live ones.

Results are delivered into the subscriber's inbox (a ``triggers._asyncio.Mailbox``) as ``("poll", PollResult)``,
so a trigger can wait on the poller and on other sources (the callback listener) with one ``await``.

The registry is keyed by the running event loop as well: ``dag.test()`` runs each trigger in its own
``asyncio.run()``, and an HTTP client must never be shared across loops.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_tencent_ci.common import config
from airflow_provider_tencent_ci.constants import JOB_QUERY_BATCH_DEFAULT
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.triggers._asyncio import Mailbox, within

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

log = logging.getLogger(__name__)

# How many batch requests of one poller may be in flight at once (bounded so a large fleet does not burst).
MAX_CONCURRENT_REQUESTS = 4
# Longest back-off after repeated transient errors (throttling, 5xx, network).
MAX_ERROR_BACKOFF_SECONDS = 300.0
# Heap entries a cycle takes between two yields to the event loop.
SLICE = 1000
# New subscriptions join the heap once no trigger subscribed for this long (a burst is polled together).
SETTLE_SECONDS = 0.25


def configured_batch_size() -> int:
    """``[tencent_ci] job_query_batch_size`` with the conservative documented default."""
    return max(1, config.getint("job_query_batch_size", JOB_QUERY_BATCH_DEFAULT))


@dataclass
class PollResult:
    """What one poll cycle learnt about one job."""

    job_id: str
    job: dict[str, Any] | None = None  # the JobsDetail when CI returned it
    missing: bool = False  # CI listed the id in NonExistJobIds
    error: TencentCloudError | None = None  # a non-retryable failure of the query (auth, parameters)

    @property
    def state(self) -> str | None:
        return None if self.job is None else self.job.get("State")


class Subscription:
    """One trigger's interest in one job; close it when done (the trigger's ``finally``)."""

    # Thousands wait at once: no per-instance dict.
    __slots__ = ("closed", "errors", "inbox", "interval", "job_id", "next_due", "poller")

    def __init__(self, poller: JobPoller, job_id: str, interval: float, inbox: Mailbox) -> None:
        self.poller = poller
        self.job_id = job_id
        self.interval = interval
        self.inbox = inbox
        self.next_due = 0.0
        self.errors = 0
        self.closed = False

    def deliver(self, result: PollResult) -> None:
        if not self.closed:
            self.inbox.put_nowait(("poll", result))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.poller._unsubscribe(self)


# A heap entry: (due time, tie-breaker, subscription). Valid while the subscription is open and still due then.
_Entry = tuple[float, int, Subscription]


class JobPoller:
    """The coalescing poll loop for one (conn_id, region, bucket) in one event loop."""

    def __init__(self, conn_id: str, region: str | None, bucket: str, batch_size: int | None = None) -> None:
        self.conn_id = conn_id
        self.region = region
        self.bucket = bucket
        self.batch_size = max(1, batch_size or configured_batch_size())
        self._hook: CIHook | None = None
        # By job id: fan-out of one result to its waiters (a list: almost always one, a set costs 3x the memory).
        self._subs: dict[str, list[Subscription]] = {}
        self._live = 0
        self._pending: list[Subscription] = []  # subscribed, not yet in the heap (see _admit)
        self._pending_since = 0.0
        self._last_subscribed = 0.0
        self._due: list[_Entry] = []
        self._seq = itertools.count()
        self._intervals: dict[float, int] = {}  # interval -> open subscriptions with it (the tick is the smallest)
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._tick: float | None = None
        # Bounds the requests in flight of the poll loop and of callback confirmations together.
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._confirmations: dict[str, list[asyncio.Future[PollResult]]] = {}
        self._confirm_task: asyncio.Task | None = None
        # Counters for tests and metrics: cycles that sent at least one request, requests sent, loop wake-ups, and
        # heap entries examined by them (stays near the number of subscriptions actually due, never N per wake-up).
        self.cycles = 0
        self.requests = 0
        self.wakeups = 0
        self.examined = 0

    @property
    def hook(self) -> CIHook:
        if self._hook is None:
            from airflow_provider_tencent_ci.hooks.ci import CIHook

            # The hook splits larger id lists itself: give it our batch size (its documented maximum is 100).
            self._hook = CIHook(
                tencentcloud_conn_id=self.conn_id, region=self.region, job_query_batch_size=min(self.batch_size, 100)
            )
        return self._hook

    @property
    def subscriber_count(self) -> int:
        return self._live

    # -- subscription ---------------------------------------------------------------------------------------
    def subscribe(self, job_id: str, interval: float, inbox: Mailbox | None = None) -> Subscription:
        interval = max(0.01, float(interval))
        sub = Subscription(self, job_id, interval, inbox if inbox is not None else Mailbox())
        # Pending until its burst of subscriptions is over (``_admit``), then due now: it is taken by the next
        # cycle. The loop is not woken for it (unless it is idle or this interval is shorter than its tick), so a
        # stream of new subscribers cannot multiply the requests.
        now = time.monotonic()
        if not self._pending:
            self._pending_since = now
        self._pending.append(sub)
        self._last_subscribed = now
        self._subs.setdefault(job_id, []).append(sub)
        self._live += 1
        self._intervals[interval] = self._intervals.get(interval, 0) + 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ci-job-poller:{self.bucket}")
        elif self._tick is None or interval < self._tick:
            self._wake.set()
        return sub

    def _schedule(self, sub: Subscription, due: float) -> None:
        """Set a subscription's due time; an entry it had before becomes stale."""
        sub.next_due = due
        heapq.heappush(self._due, (due, next(self._seq), sub))

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs[sub.job_id]
            self._live -= 1
            left = self._intervals[sub.interval] - 1
            if left:
                self._intervals[sub.interval] = left
            else:
                del self._intervals[sub.interval]
        if not self._live:
            self._wake.set()  # let the loop notice it has nothing left to do

    @staticmethod
    def _valid(entry: _Entry) -> bool:
        return not entry[2].closed and entry[2].next_due == entry[0]

    def _compact(self) -> None:
        """Drop stale entries once they outnumber live ones (amortised O(1) per closed subscription)."""
        if len(self._due) > 2 * self._live + 64:
            self._due = [e for e in self._due if self._valid(e)]
            heapq.heapify(self._due)

    # -- direct queries (callback confirmation) ------------------------------------------------------------
    async def fetch(self, job_ids: Sequence[str]) -> dict[str, PollResult]:
        """Query these jobs now (a callback is confirmed with CI's answer, never trusted on its own).

        Confirmations that arrive together share requests: one ``GET /jobs/<id1..idK>`` per batch, with the
        poll loop's bound on requests in flight, so a burst of callbacks cannot pile up unbounded requests.
        Raises the query's :class:`TencentCloudError` when it fails.
        """
        loop = asyncio.get_running_loop()
        waiting: dict[str, asyncio.Future[PollResult]] = {}
        for job_id in dict.fromkeys(job_ids):
            waiting[job_id] = loop.create_future()
            self._confirmations.setdefault(job_id, []).append(waiting[job_id])
        if self._confirm_task is None or self._confirm_task.done():
            self._confirm_task = loop.create_task(self._send_confirmations(), name=f"ci-job-confirm:{self.bucket}")
        return {job_id: await future for job_id, future in waiting.items()}

    async def _send_confirmations(self) -> None:
        await asyncio.sleep(0)  # callbacks handled in this loop iteration join the same batch
        while self._confirmations:
            ids = list(self._confirmations)[: self.batch_size * MAX_CONCURRENT_REQUESTS]
            batches = [(chunk, [self._confirmations.pop(i) for i in chunk]) for chunk in _chunks(ids, self.batch_size)]
            await asyncio.gather(*(self._confirm_chunk(chunk, futures) for chunk, futures in batches))

    async def _confirm_chunk(self, chunk: list[str], futures: list[list[asyncio.Future[PollResult]]]) -> None:
        async with self._semaphore:
            self.requests += 1
            try:
                results = _index(chunk, await self.hook.aget_jobs(self.bucket, chunk))
            except Exception as err:  # every waiter gets the failure; nothing may kill the confirmation task
                if not isinstance(err, TencentCloudError):
                    log.exception("Unexpected error confirming CI jobs in %s", self.bucket)
                    err = TencentCloudError(f"{type(err).__name__}: {err}", operation="DescribeJobs")
                for waiters in futures:
                    for future in waiters:
                        if not future.done():
                            future.set_exception(err)
                return
        for job_id, waiters in zip(chunk, futures, strict=True):
            for future in waiters:
                if not future.done():
                    future.set_result(results[job_id])

    # -- the loop ---------------------------------------------------------------------------------------------
    async def _take_due(self, horizon: float, now: float) -> list[str]:
        """Pop every valid entry due by ``horizon`` and schedule it one interval after ``now``; the job ids taken,
        each once. Stale entries met on the way are dropped. Works in slices of ``SLICE`` entries with a yield to
        the loop between them: a cycle of 10,000 subscriptions must not hold the loop for the whole of it."""
        taken: dict[str, None] = {}
        in_slice = 0
        while self._due and self._due[0][0] <= horizon:
            entry = heapq.heappop(self._due)
            self.examined += 1
            if self._valid(entry):
                sub = entry[2]
                taken[sub.job_id] = None
                self._schedule(sub, now + sub.interval)
            in_slice += 1
            if in_slice >= SLICE:
                in_slice = 0
                await asyncio.sleep(0)
        return list(taken)

    def _next_due(self) -> float | None:
        while self._due and not self._valid(self._due[0]):
            heapq.heappop(self._due)
            self.examined += 1
        return self._due[0][0] if self._due else None

    def _admit(self, now: float, tick: float) -> None:
        """Move the pending subscriptions into the heap (due now) once their burst is over (``_admission_time``).

        Triggers arriving in a burst (a triggerer starting, or taking over thousands of triggers) are admitted
        together when no trigger subscribed for ``SETTLE_SECONDS``, or after one tick at the latest: a cycle run in
        the middle of the burst would slow it down (its requests' parsing runs on this loop) and poll the jobs
        subscribed so far only to poll them again with the rest. Cycles of admitted subscriptions run on time.
        """
        admit_at = self._admission_time(tick)
        if admit_at is None or now < admit_at:
            return
        pending, self._pending = self._pending, []
        for sub in pending:
            if not sub.closed:
                self._schedule(sub, now)

    def _admission_time(self, tick: float) -> float | None:
        if not self._pending:
            return None
        return min(self._last_subscribed + SETTLE_SECONDS, self._pending_since + tick)

    async def _run(self) -> None:
        while self._live:
            self._wake.clear()
            self.wakeups += 1
            now = time.monotonic()
            tick = min(self._intervals)
            self._tick = tick
            self._admit(now, tick)
            due_ids = await self._take_due(now + tick / 2, now)
            if due_ids:
                self.cycles += 1
                await self._poll_all(due_ids)
            self._compact()
            next_due = self._next_due()
            admit_at = self._admission_time(tick)  # including triggers that subscribed during the cycle
            if admit_at is not None:
                next_due = admit_at if next_due is None else min(next_due, admit_at)
            if not self._live or next_due is None:
                break
            await within(self._wake.wait(), max(0.0, next_due - time.monotonic()))
        self._tick = None
        if not self._live:
            # Only stale entries are left: release the closed subscriptions now.
            self._due.clear()
            self._pending.clear()

    async def _poll_all(self, job_ids: list[str]) -> None:
        """Query these jobs, ``batch_size`` per request, with at most ``MAX_CONCURRENT_REQUESTS`` in flight: that
        many workers take the next chunk when one is done (not one task per chunk: 1,000 tasks started at once
        cost memory and a long loop iteration)."""
        chunks = iter(_chunks(job_ids, self.batch_size))

        async def worker() -> None:
            for chunk in chunks:
                await self._poll_chunk(chunk)

        workers = min(MAX_CONCURRENT_REQUESTS, -(-len(job_ids) // self.batch_size))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _poll_chunk(self, chunk: list[str]) -> None:
        async with self._semaphore:
            self.requests += 1
            try:
                query = await self.hook.aget_jobs(self.bucket, chunk)
            except TencentCloudError as err:
                if err.retryable:
                    # Throttling, 5xx, network: the hook already retried; back off and try again later.
                    for job_id in chunk:
                        for sub in self._subs.get(job_id, ()):
                            sub.errors += 1
                            backoff = min(sub.interval * 2 ** min(sub.errors, 10), MAX_ERROR_BACKOFF_SECONDS)
                            self._schedule(sub, time.monotonic() + backoff)
                    log.warning("Transient error polling %d CI job(s) in %s: %s", len(chunk), self.bucket, err)
                    return
                log.error("Polling CI jobs in %s failed: %s", self.bucket, err)
                for job_id in chunk:
                    self._deliver(PollResult(job_id, error=err))
                return
            except Exception as err:  # a bug or an unexpected SDK error must not kill the shared loop
                log.exception("Unexpected error polling CI jobs in %s", self.bucket)
                wrapped = TencentCloudError(f"{type(err).__name__}: {err}", operation="DescribeJobs")
                for job_id in chunk:
                    self._deliver(PollResult(job_id, error=wrapped))
                return
        for job_id, result in _index(chunk, query).items():
            for sub in self._subs.get(job_id, ()):
                sub.errors = 0
            self._deliver(result)

    def _deliver(self, result: PollResult) -> None:
        for sub in list(self._subs.get(result.job_id, ())):
            sub.deliver(result)


def _index(chunk: Iterable[str], query: Any) -> dict[str, PollResult]:
    """Turn a hook ``JobsQuery`` into one PollResult per requested id."""
    jobs = {str(j.get("JobId")): j for j in (getattr(query, "jobs", None) or []) if isinstance(j, dict)}
    results: dict[str, PollResult] = {}
    for job_id in chunk:
        # An id that came back neither in JobsDetail nor in NonExistJobIds is treated as missing as well.
        results[job_id] = PollResult(job_id, job=jobs[job_id]) if job_id in jobs else PollResult(job_id, missing=True)
    return results


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def requests_per_cycle(n_jobs: int, batch_size: int) -> int:
    """The number of requests one cycle needs for n jobs (for docs and tests)."""
    return math.ceil(n_jobs / max(1, batch_size))


# -- process-wide registry -----------------------------------------------------------------------------------
_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str | None, str], JobPoller]] = (
    weakref.WeakKeyDictionary()
)


def get_poller(conn_id: str, region: str | None, bucket: str, batch_size: int | None = None) -> JobPoller:
    """The shared poller for (conn_id, region, bucket) in the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    pollers = _REGISTRY.setdefault(loop, {})
    key = (conn_id, region, bucket)
    poller = pollers.get(key)
    if poller is None:
        poller = pollers[key] = JobPoller(conn_id, region, bucket, batch_size)
    elif batch_size:
        # Triggers of one key may ask for different batch sizes: the smallest (most conservative) wins.
        poller.batch_size = min(poller.batch_size, max(1, batch_size))
    return poller


def pollers_for_current_loop() -> dict[tuple[str, str | None, str], JobPoller]:
    """The pollers of the running loop (tests and diagnostics)."""
    return _REGISTRY.get(asyncio.get_running_loop(), {})
