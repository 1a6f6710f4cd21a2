"""A per-process poller that coalesces CI job queries from many triggers.

The triggerer runs every trigger of a process in one asyncio loop. Without coalescing, N deferred tasks mean N
``GET /jobs/<id>`` requests per poll interval; CI accepts several ids per request (``GET /jobs/<id1,...,idK>``), so
triggers that share a connection, region and bucket subscribe here instead and one poll loop per key asks for up to
K jobs per request and fans the results out to every waiting trigger. 10,000 waiting jobs cost ceil(10,000 / K)
requests per cycle, through one hook (one HTTP client) per key.

Scheduling: each subscription has its own interval and due time; the loop wakes when the earliest subscription is
due and then also takes every subscription that falls due within half a tick, so subscribers that started at
different moments converge on the same cycles and share requests.

Results are delivered into the subscriber's inbox (an ``asyncio.Queue``) as ``("poll", PollResult)``, so a
trigger can wait on the poller and on other sources (the callback listener) with one ``await``.

The registry is keyed by the running event loop as well: ``dag.test()`` runs each trigger in its own
``asyncio.run()``, and an HTTP client must never be shared across loops.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
CONFIG_SECTION = "tencent_ci"


def configured_batch_size() -> int:
    """``[tencent_ci] job_query_batch_size`` with the conservative documented default."""
    try:
        from airflow.configuration import conf

        value = conf.getint(CONFIG_SECTION, "job_query_batch_size", fallback=JOB_QUERY_BATCH_DEFAULT)
    except Exception:  # config unavailable (tests without Airflow home): stay conservative
        value = JOB_QUERY_BATCH_DEFAULT
    return max(1, int(value))


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


@dataclass(eq=False)
class Subscription:
    """One trigger's interest in one job; close it when done (the trigger's ``finally``)."""

    poller: JobPoller
    job_id: str
    interval: float
    inbox: Mailbox
    next_due: float = field(default=0.0)
    errors: int = 0
    closed: bool = False

    def deliver(self, result: PollResult) -> None:
        if not self.closed:
            self.inbox.put_nowait(("poll", result))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.poller._unsubscribe(self)


class JobPoller:
    """The coalescing poll loop for one (conn_id, region, bucket) in one event loop."""

    def __init__(self, conn_id: str, region: str | None, bucket: str, batch_size: int | None = None) -> None:
        self.conn_id = conn_id
        self.region = region
        self.bucket = bucket
        self.batch_size = max(1, batch_size or configured_batch_size())
        self._hook: CIHook | None = None
        self._subs: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._tick: float | None = None
        # Bounds the requests in flight of the poll loop and of callback confirmations together.
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)
        self._confirmations: dict[str, list[asyncio.Future[PollResult]]] = {}
        self._confirm_task: asyncio.Task | None = None
        # Counters for tests and metrics: cycles that sent at least one request, and requests sent.
        self.cycles = 0
        self.requests = 0

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
        return sum(len(s) for s in self._subs.values())

    # -- subscription ---------------------------------------------------------------------------------------
    def subscribe(self, job_id: str, interval: float, inbox: Mailbox | None = None) -> Subscription:
        interval = max(0.01, float(interval))
        sub = Subscription(self, job_id, interval, inbox if inbox is not None else Mailbox())
        # Due now: it is taken by the next cycle. The loop is not woken for it (unless it is idle or this
        # interval is shorter than its tick), so a stream of new subscribers cannot multiply the requests.
        sub.next_due = time.monotonic()
        self._subs.setdefault(job_id, set()).add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"ci-job-poller:{self.bucket}")
        elif self._tick is None or interval < self._tick:
            self._wake.set()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.job_id]
        if not self._subs:
            self._wake.set()  # let the loop notice it has nothing left to do

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
    async def _run(self) -> None:
        while self._subs:
            self._wake.clear()
            now = time.monotonic()
            all_subs = [s for subs in self._subs.values() for s in subs]
            tick = min(s.interval for s in all_subs)
            self._tick = tick
            due = [s for s in all_subs if now + tick / 2 >= s.next_due]
            if due:
                due_ids = list(dict.fromkeys(s.job_id for s in due))
                for s in due:
                    s.next_due = now + s.interval
                self.cycles += 1
                await asyncio.gather(*(self._poll_chunk(chunk) for chunk in _chunks(due_ids, self.batch_size)))
            if not self._subs:
                break
            next_due = min(s.next_due for subs in self._subs.values() for s in subs)
            delay = max(0.0, next_due - time.monotonic())
            await within(self._wake.wait(), delay)
        self._tick = None

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
                            sub.next_due = time.monotonic() + min(
                                sub.interval * 2 ** min(sub.errors, 10), MAX_ERROR_BACKOFF_SECONDS
                            )
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
