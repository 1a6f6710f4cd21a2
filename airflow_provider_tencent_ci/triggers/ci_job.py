"""Triggers for CI jobs (SegmentVideoBody and any other ``/jobs`` job).

- :class:`CIJobTrigger` polls through the per-process coalescing poller (``triggers/poller.py``).
- :class:`CIJobCallbackTrigger` waits for CI's callback on the per-process listener
  (``triggers/callback_listener.py``), confirms the state with one query, and falls back to slow polling.
- :class:`CIJobEventTrigger` is a ``BaseEventTrigger`` for asset watchers: one event per poll cycle or callback
  batch, carrying every finished job it found.

Every trigger serializes to (classpath, kwargs) with a connection id and never a secret, and ``run()`` is safe to
repeat (a triggerer restart rebuilds the trigger from its kwargs). ``cleanup()`` only releases local resources;
remote jobs are cancelled only from ``on_kill()`` (Airflow >= 3.3 calls it on user action only).

Event payloads of the task triggers: ``status`` is a ``jobs.outcome.JobOutcome`` value (that module decides what
a job's state means and which exception ``execute_complete`` raises), ``job_id``, and for a job CI returned its
``state``/``code``/``message`` and the final JobsDetail as ``job``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_tencent_ci.common.times import format_ci_time, parse_iso_time
from airflow_provider_tencent_ci.constants import (
    CALLBACK_EVENT_TASK_FINISH,
    CALLBACK_EVENT_WORKFLOW_FINISH,
    DEFAULT_CONN_ID,
    JOB_LIST_MAX_SIZE,
    JOB_QUERY_BATCH_MAX,
    JOB_TERMINAL_STATES,
    SEGMENT_VIDEO_BODY_TAG,
)
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.jobs.ids import is_job_id
from airflow_provider_tencent_ci.jobs.outcome import (
    MISSING_TOLERANCE,
    JobOutcome,
    event_payload,
    job_outcome,
    missing_payload,
)
from airflow_provider_tencent_ci.triggers import callback_listener
from airflow_provider_tencent_ci.triggers._asyncio import Mailbox
from airflow_provider_tencent_ci.triggers.poller import PollResult, get_poller
from airflow_provider_tencent_ci.validation import (
    check_choice,
    check_int_range,
    check_name,
    check_non_empty_str,
    check_positive_seconds,
)

DEFAULT_POLL_INTERVAL = 30.0
DEFAULT_CALLBACK_FALLBACK_INTERVAL = 300.0
CANCEL_TIMEOUT_SECONDS = 20.0


async def cancel_job_best_effort(
    conn_id: str, region: str | None, bucket: str, job_id: str, log: Any, timeout: float = CANCEL_TIMEOUT_SECONDS
) -> bool:
    """Ask CI to cancel a job; CI refuses once a job has started, which is logged, not raised."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook(tencentcloud_conn_id=conn_id, region=region)
    try:
        await asyncio.wait_for(hook.acancel_job(bucket, job_id), timeout=timeout)
    except TencentCloudError as err:
        log.warning("CI did not cancel job %s (it may have started already): %s", job_id, err)
        return False
    except asyncio.TimeoutError:
        log.warning("Cancelling CI job %s timed out after %ss", job_id, timeout)
        return False
    log.info("Asked CI to cancel job %s", job_id)
    return True


class _CIJobTaskTrigger(BaseTrigger):
    """Shared state handling of the two task triggers."""

    def __init__(
        self,
        *,
        job_id: str,
        bucket: str,
        tencentcloud_conn_id: str = DEFAULT_CONN_ID,
        region: str | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        end_time: float | None = None,
        fail_on_pause: bool = False,
        cancel_on_kill: bool = True,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        # Checked here, not in run(): a bad value must fail where the trigger is built, not inside the triggerer.
        self.job_id = check_non_empty_str("job_id", job_id)
        # Interned: thousands of waiting triggers share a handful of buckets and connections, and each decoded
        # copy of the kwargs would otherwise keep its own strings.
        self.bucket = sys.intern(check_non_empty_str("bucket", bucket))
        self.tencentcloud_conn_id = sys.intern(tencentcloud_conn_id)
        self.region = None if region is None else sys.intern(region)
        self.poll_interval = check_positive_seconds("poll_interval", poll_interval)
        # An absolute deadline (epoch seconds), not a duration: a rebuilt trigger must not extend the wait.
        self.end_time = end_time
        self.fail_on_pause = fail_on_pause
        self.cancel_on_kill = cancel_on_kill
        self.batch_size = (
            None if batch_size is None else check_int_range("batch_size", batch_size, 1, JOB_QUERY_BATCH_MAX)
        )
        self._last_state: str | None = None
        self._missing = 0

    @property
    def log(self) -> Any:
        """The class's logger, shared by every instance: LoggingMixin builds one logger object per instance on
        first use, about 0.3 KB for each of thousands of waiting triggers (the triggerer tells triggers' log lines
        apart by context variables, not by logger object)."""
        return type(self).logger()

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "bucket": self.bucket,
            "tencentcloud_conn_id": self.tencentcloud_conn_id,
            "region": self.region,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "fail_on_pause": self.fail_on_pause,
            "cancel_on_kill": self.cancel_on_kill,
            "batch_size": self.batch_size,
        }

    def _remaining(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _evaluate(self, result: PollResult) -> TriggerEvent | None:
        """Log state changes; return the event to yield, or None to keep waiting."""
        if result.error is not None:
            err = result.error
            return TriggerEvent(event_payload(JobOutcome.ERROR, self.job_id, code=err.code, message=str(err)))
        job = None if result.missing else result.job
        if job is None:
            self._missing += 1
            self.log.warning("CI job %s not found (%d/%d)", self.job_id, self._missing, MISSING_TOLERANCE)
        else:
            self._missing = 0
            state = job.get("State")
            if state != self._last_state:
                self.log.info("CI job %s: state %s -> %s", self.job_id, self._last_state or "(unknown)", state)
                # Interned: each parsed answer has its own copy of the state name.
                self._last_state = sys.intern(state) if isinstance(state, str) else state
        outcome = job_outcome(job, fail_on_pause=self.fail_on_pause, missing=self._missing)
        if not outcome.done:
            return None
        return TriggerEvent(missing_payload(self.job_id) if job is None else event_payload(outcome, self.job_id, job))

    def _timeout_event(self) -> TriggerEvent:
        return TriggerEvent(
            event_payload(
                JobOutcome.TIMEOUT,
                self.job_id,
                state=self._last_state,
                message=f"CI job {self.job_id} did not finish before the max wait (last state {self._last_state})",
            )
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Every provider trigger starts the process's listener (and relay subscriber): the port serves from the
        # moment the triggerer runs any of them, not only once a callback trigger arrives.
        listener = await callback_listener.ensure_listener()
        poller = get_poller(self.tencentcloud_conn_id, self.region, self.bucket, self.batch_size)
        inbox = Mailbox()
        registration = await self._listen_for_callbacks(listener, inbox)
        sub = poller.subscribe(self.job_id, self.poll_interval, inbox)
        try:
            while True:
                # Awaited here, not in a helper coroutine: each waiting trigger holds one coroutine frame less.
                remaining = self._remaining()
                item = None if remaining is not None and remaining <= 0 else await inbox.get(remaining)
                if item is None:
                    yield self._timeout_event()
                    return
                source, data = item
                result = await self._confirm(poller, data) if source == "callback" else data
                event = None if result is None else self._evaluate(result)
                # Nothing of this cycle survives into the next wait: thousands of waiting triggers must not each
                # hold a parsed JobsDetail (memory, and full garbage collections that stall the triggerer).
                del item, data, result
                if event is not None:
                    yield event
                    return
        finally:
            sub.close()
            if registration is not None:
                registration.close()

    async def _listen_for_callbacks(
        self, listener: callback_listener.CallbackListener | None, inbox: Mailbox
    ) -> callback_listener.Registration | None:
        """Polling only; the callback trigger also registers with the listener."""
        return None

    async def _confirm(self, poller: Any, message: callback_listener.CallbackMessage) -> PollResult | None:
        """A callback is only a hint: query the job once and trust only CI's answer."""
        if self.job_id not in message.job_ids():
            self.log.warning("Ignoring a callback for other job(s)")
            return None
        claimed = message.for_job(self.job_id)
        claimed_state = claimed[-1].get("State") if claimed else None
        self.log.info(
            "Callback (%s) for CI job %s claims state %s; confirming", message.fmt, self.job_id, claimed_state
        )
        try:
            result = (await poller.fetch([self.job_id]))[self.job_id]
        except TencentCloudError as err:
            if err.retryable:
                self.log.warning("Could not confirm the callback now (%s); the fallback poll will", err)
                return None
            return PollResult(self.job_id, error=err)
        if result.state is not None and result.state != claimed_state:
            self.log.warning(
                "Callback for CI job %s claims %s but CI reports %s; ignoring the claim",
                self.job_id,
                claimed_state,
                result.state,
            )
        return result

    async def on_kill(self) -> None:
        """Airflow >= 3.3: the user marked/cleared the deferred task. Cancel the job (best effort)."""
        if self.cancel_on_kill:
            await cancel_job_best_effort(self.tencentcloud_conn_id, self.region, self.bucket, self.job_id, self.log)


class CIJobTrigger(_CIJobTaskTrigger):
    """Wait for a CI job by polling; polls of triggers sharing (conn, region, bucket) are coalesced.

    :param job_id: the CI JobId.
    :param bucket: full bucket name (``name-appid``) the job belongs to.
    :param tencentcloud_conn_id: Airflow connection id.
    :param region: region (None: the connection's).
    :param poll_interval: seconds between polls of this job.
    :param end_time: absolute deadline (epoch seconds) after which a ``timeout`` event is yielded; None waits on.
    :param fail_on_pause: yield ``paused`` when the job is in Pause instead of waiting.
    :param cancel_on_kill: cancel the job from ``on_kill`` (user action on the deferred task).
    :param batch_size: max job ids per query (default ``[tencent_ci] job_query_batch_size`` or 10).
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._common_kwargs()


class CIJobCallbackTrigger(_CIJobTaskTrigger):
    """Wait for CI's callback for a job; confirm by query; fall back to slow polling.

    The job's CallBack URL must be ``callback_listener.callback_url(token_for_nonce(callback_nonce))`` (the
    operator sets it). ``poll_interval`` is the fallback poll interval (lost callbacks, several triggerers behind
    one callback URL, a listener that could not bind).
    """

    def __init__(self, *, callback_nonce: str, **kwargs: Any) -> None:
        kwargs.setdefault("poll_interval", DEFAULT_CALLBACK_FALLBACK_INTERVAL)
        super().__init__(**kwargs)
        self.callback_nonce = callback_nonce

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {**self._common_kwargs(), "callback_nonce": self.callback_nonce},
        )

    async def _listen_for_callbacks(
        self, listener: callback_listener.CallbackListener | None, inbox: Mailbox
    ) -> callback_listener.Registration | None:
        if listener is None:
            self.log.warning("CI callback listener unavailable; relying on polling every %ss", self.poll_interval)
            return None
        try:
            token = callback_listener.token_for_nonce(self.callback_nonce)
        except callback_listener.CallbackTokenKeyError as err:  # the key was removed since the job was submitted
            self.log.error("Cannot receive CI callbacks (%s); relying on polling every %ss", err, self.poll_interval)
            return None
        return await listener.listen(token, inbox)


# -- event trigger ------------------------------------------------------------------------------------------
def _epoch(value: Any) -> float | None:
    parsed = parse_iso_time(value)
    return None if parsed is None else parsed.timestamp()


# In-memory cursors when Airflow offers no asset_state_store (< 3.3, or a trigger not bound to an asset):
# a trigger rebuilt in the same process resumes from here instead of re-emitting.
_MEMORY_CURSORS: dict[str, dict[str, Any]] = {}
MAX_SEEN = 5000


class CIJobEventTrigger(BaseEventTrigger):
    """Asset events for finished CI jobs (TaskFinish/WorkflowFinish), each job once, deduplicated by JobId.

    Sources: callbacks on a named listener channel (set the CI queue's or the jobs' CallBack URL to
    ``callback_listener.callback_url(callback_listener.channel_token(channel))``), and a job-list poll that
    catches whatever callbacks missed. Every candidate is confirmed by CI's query/list API: a callback only names
    JobIds (at most ``callbacks.parsing.MAX_ENTRIES``: the parser refuses more; each checked against CI's id
    alphabet before it is sent), and a callback that cannot be handled is logged and dropped without ending
    ``run()``.

    **One event per poll cycle or callback batch**, carrying every job it found: several events yielded at the same
    instant were consumed as one by Airflow 3.3.2's scheduler (one DAG run took one event, the rest waited for the
    next unrelated event), so a burst is one event. Payload::

        {"bucket": ..., "tag": ..., "source": "poll" | "callback",
         "jobs": [{"job_id", "state", "code", "message", "event_name", "tag", "source", "creation_time",
                   "end_time"}, ...]}

    The cursor (a creation-time watermark plus the JobIds already emitted) lives in ``asset_state_store`` where
    Airflow injects one (3.3+), in process memory otherwise; it is written *before* an event is yielded, so a crash
    can lose at most that one event but never emits a job twice.

    :param bucket: full bucket name.
    :param tag: job tag to watch (``SegmentVideoBody``).
    :param channel: optional callback channel name.
    :param poll_interval: seconds between list polls: a finished job is reported about this long after it ended
        at the latest (each cycle starts early by the expected cycle length, see ``_next_cycle_start``).
    :param lookback_seconds: on first start (no cursor), report jobs created this long ago or later.
    :param states: terminal states to report (default Success, Failed, Cancel).
    :param max_pages: list pages (100 jobs each) read per poll at most.
    """

    def __init__(
        self,
        *,
        bucket: str,
        tencentcloud_conn_id: str = DEFAULT_CONN_ID,
        region: str | None = None,
        tag: str = SEGMENT_VIDEO_BODY_TAG,
        channel: str | None = None,
        poll_interval: float = 60.0,
        lookback_seconds: float = 3600.0,
        states: list[str] | None = None,
        max_pages: int = 10,
    ) -> None:
        super().__init__()
        # An event trigger is built at DAG parse (AssetWatcher): bad values must fail there, not in the triggerer.
        self.bucket = check_non_empty_str("bucket", bucket)
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self.region = region
        self.tag = check_non_empty_str("tag", tag)
        self.channel = None if channel is None else check_name("channel", channel)
        self.poll_interval = check_positive_seconds("poll_interval", poll_interval)
        self.lookback_seconds = check_positive_seconds("lookback_seconds", lookback_seconds)
        for state in states or ():
            check_choice("states", state, sorted(JOB_TERMINAL_STATES))
        self.states = sorted(states) if states else sorted(JOB_TERMINAL_STATES)
        self.max_pages = check_int_range("max_pages", max_pages, 1, 1000)
        self._cursor: dict[str, Any] | None = None
        self._hook: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "bucket": self.bucket,
                "tencentcloud_conn_id": self.tencentcloud_conn_id,
                "region": self.region,
                "tag": self.tag,
                "channel": self.channel,
                "poll_interval": self.poll_interval,
                "lookback_seconds": self.lookback_seconds,
                "states": self.states,
                "max_pages": self.max_pages,
            },
        )

    # -- cursor ---------------------------------------------------------------------------------------------
    @property
    def cursor_key(self) -> str:
        return f"tencent_ci_job_events:{self.tencentcloud_conn_id}:{self.region}:{self.bucket}:{self.tag}"

    def _store(self) -> Any:
        return getattr(self, "asset_state_store", None)

    async def _load_cursor(self) -> dict[str, Any]:
        cursor: Any = None
        store = self._store()
        if store is not None:
            try:
                cursor = await store.aget(self.cursor_key)
            except Exception as err:  # e.g. several assets share this trigger: no single accessor
                self.log.warning("asset_state_store unavailable (%s); keeping the cursor in memory", err)
                store = None
        if not isinstance(cursor, dict):
            cursor = _MEMORY_CURSORS.get(self.cursor_key)
        if not isinstance(cursor, dict):
            cursor = {"watermark": time.time() - self.lookback_seconds, "seen": {}}
        cursor.setdefault("seen", {})
        return cursor

    async def _save_cursor(self) -> None:
        assert self._cursor is not None
        seen: dict[str, float] = self._cursor["seen"]
        if len(seen) > MAX_SEEN:  # keep the newest ids; anything older is behind the watermark anyway
            for job_id in sorted(seen, key=seen.__getitem__)[: len(seen) - MAX_SEEN]:
                del seen[job_id]
        _MEMORY_CURSORS[self.cursor_key] = self._cursor
        store = self._store()
        if store is not None:
            try:
                await store.aset(self.cursor_key, self._cursor)
            except Exception as err:
                self.log.warning("Could not persist the job-event cursor (%s); kept in memory", err)

    @property
    def hook(self) -> Any:
        if self._hook is None:
            from airflow_provider_tencent_ci.hooks.ci import CIHook

            self._hook = CIHook(tencentcloud_conn_id=self.tencentcloud_conn_id, region=self.region)
        return self._hook

    # -- run ------------------------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        listener = await callback_listener.ensure_listener()
        self._cursor = await self._load_cursor()
        mailbox = Mailbox()
        registration = None
        if self.channel:
            if listener is None:
                self.log.warning("CI callback listener unavailable; polling only")
            else:
                try:
                    token = callback_listener.channel_token(self.channel)
                except callback_listener.CallbackTokenKeyError as err:
                    self.log.error("Cannot receive CI callbacks on channel %s (%s); polling only", self.channel, err)
                else:
                    registration = await listener.listen(token, mailbox)
        try:
            next_poll = 0.0
            cycle_s = 0.0  # the expected length of the next cycle: the last one's, or a recent longer one's
            while True:
                delay = next_poll - time.monotonic()
                if delay <= 0:
                    started = time.monotonic()
                    found, source = await self._isolated(self._poll(), "the job-list poll"), "poll"
                    cycle_s = max(time.monotonic() - started, cycle_s * 0.75)
                    next_poll = _next_cycle_start(started, cycle_s, self.poll_interval)
                else:
                    await mailbox.wait(delay)
                    messages = [item[1] for item in mailbox.drain()]
                    if not messages:
                        continue
                    found, source = await self._isolated(self._from_callbacks(messages), "a callback batch"), "callback"
                event = await self._emit(found, source)
                if event is not None:
                    yield event
        finally:
            if registration is not None:
                registration.close()

    async def _isolated(self, work: Awaitable[list[tuple[dict[str, Any], str]]], what: str) -> list:
        """Run one poll or one callback batch; whatever goes wrong in it is logged, never ends the watcher."""
        try:
            return await work
        except Exception:
            self.log.exception("Handling %s failed; the watcher keeps running", what)
            return []

    def _is_new(self, job_id: str) -> bool:
        assert self._cursor is not None
        return job_id not in self._cursor["seen"]

    async def _emit(self, found: list[tuple[dict[str, Any], str]], source: str) -> TriggerEvent | None:
        """Mark the jobs seen, persist the cursor, then build the one event that carries them all (persist first:
        a job is never reported twice)."""
        assert self._cursor is not None
        summaries: list[dict[str, Any]] = []
        for job, event_name in found:
            job_id = str(job.get("JobId"))
            if job_id in self._cursor["seen"]:
                continue
            self._cursor["seen"][job_id] = _epoch(job.get("CreationTime")) or time.time()
            summaries.append(
                {
                    "job_id": job_id,
                    "state": job.get("State"),
                    "code": job.get("Code"),
                    "message": job.get("Message"),
                    "event_name": event_name,
                    "tag": job.get("Tag", self.tag),
                    "source": source,
                    "creation_time": job.get("CreationTime"),
                    "end_time": job.get("EndTime"),
                }
            )
        if summaries or source == "poll":
            await self._save_cursor()  # a poll also moves the watermark
        if not summaries:
            return None
        return TriggerEvent({"bucket": self.bucket, "tag": self.tag, "source": source, "jobs": summaries})

    def _callback_ids(self, message: callback_listener.CallbackMessage) -> list[str]:
        """The JobIds of one callback worth querying; [] (with one warning) for a callback that is not CI's."""
        ids = message.job_ids()  # bounded by the parser (callbacks.parsing.MAX_ENTRIES)
        bad = [job_id for job_id in ids if not is_job_id(job_id)]
        if bad:
            self.log.warning("Dropping a callback naming %d malformed JobId(s), e.g. %r", len(bad), bad[0][:80])
            return []
        return [job_id for job_id in ids if self._is_new(job_id)]

    async def _from_callbacks(self, messages: list[callback_listener.CallbackMessage]) -> list[tuple[dict, str]]:
        """Confirm by one query every new job the callbacks of one batch name (duplicates are queried once)."""
        named: dict[str, str] = {}
        for message in messages:
            for job_id in self._callback_ids(message):
                named.setdefault(job_id, str(message.event_name or ""))
        if not named:
            return []  # duplicated callbacks, already reported by the poll, or dropped
        try:
            query = await self.hook.aget_jobs(self.bucket, list(named))
        except TencentCloudError as err:
            self.log.warning("Could not confirm callbacks for %s (%s); the list poll will catch them", list(named), err)
            return []
        confirmed = []
        # A job created before the watermark was already judged by the list poll (emitted or filtered).
        judged_before = float(self._cursor["watermark"]) - 60 if self._cursor else 0.0
        for job in getattr(query, "jobs", []) or []:
            job_id = str(job.get("JobId"))
            if job_id not in named:
                continue
            created = _epoch(job.get("CreationTime"))
            if created is not None and created < judged_before:
                continue
            if job.get("State") in self.states and job.get("Tag", self.tag) == self.tag:
                confirmed.append((job, named[job_id] or _event_name(job)))
            else:
                self.log.info("Callback for job %s not confirmed (CI reports %s)", job_id, job.get("State"))
        return confirmed

    async def _poll(self) -> list[tuple[dict[str, Any], str]]:
        assert self._cursor is not None
        watermark = float(self._cursor["watermark"])
        # Small overlap: creation times have one-second resolution and clocks differ.
        start = format_ci_time(datetime.fromtimestamp(watermark - 60, tz=timezone.utc))
        oldest_active: float | None = None
        newest: float | None = None
        found: list[tuple[dict[str, Any], str]] = []
        next_token = ""
        try:
            for _ in range(max(1, self.max_pages)):
                page = await self.hook.alist_jobs(
                    self.bucket,
                    self.tag,
                    start_creation_time=start,
                    size=JOB_LIST_MAX_SIZE,
                    next_token=next_token,
                    order_by_time="Asc",
                )
                for job in getattr(page, "jobs", []) or []:
                    created = _epoch(job.get("CreationTime"))
                    if created is not None:
                        newest = created if newest is None else max(newest, created)
                    state = job.get("State")
                    if state not in JOB_TERMINAL_STATES:
                        if created is not None:
                            oldest_active = created if oldest_active is None else min(oldest_active, created)
                        continue
                    job_id = str(job.get("JobId"))
                    if state in self.states and self._is_new(job_id):
                        found.append((job, _event_name(job)))
                next_token = getattr(page, "next_token", "") or ""
                if not next_token:
                    break
        except TencentCloudError as err:
            self.log.warning("Listing CI jobs failed (%s); retrying next poll", err)
            return []
        # Advance the watermark: everything created before the oldest still-active job has been judged.
        if oldest_active is not None:
            self._cursor["watermark"] = max(watermark, oldest_active)
        elif newest is not None:
            self._cursor["watermark"] = max(watermark, newest)
        floor = float(self._cursor["watermark"]) - 120
        seen = self._cursor["seen"]
        for job_id in [j for j, created in seen.items() if created < floor]:
            del seen[job_id]
        return found


def _next_cycle_start(started: float, duration: float, interval: float) -> float:
    """When the next list cycle starts, so that a job is reported within about one interval of ending.

    The cycle's one event is yielded after its last page: a job that ends just after its page was read is
    reported when the *next* cycle ends. Starting that cycle ``duration`` (its expected length: the cycles just
    run, a slowly decaying maximum of them) before the interval is up puts its end one interval after this
    cycle's first page read, instead of one interval plus a cycle. Requests per cycle are unchanged; cycles start
    at least half an interval apart.

    Why not one event per page, yielded as each page is read: events moments apart are not consumed together.
    Airflow 3.3.2's scheduler (``_create_dag_runs_asset_triggered``) gives a run the events up to the creation
    time of the DAG's AssetDagRunQueue row, which the first event creates and later ones leave unchanged
    (insert-or-ignore); the rest of a burst would wait for the asset's next event, in a quiet bucket indefinitely.
    """
    return started + interval - min(duration, interval / 2)


def _event_name(job: dict[str, Any]) -> str:
    return CALLBACK_EVENT_WORKFLOW_FINISH if job.get("Workflow") else CALLBACK_EVENT_TASK_FINISH


def deadline_from(max_wait: float | timedelta | None) -> float | None:
    """An absolute deadline (epoch seconds) for ``end_time`` from a max wait."""
    if max_wait is None:
        return None
    seconds = max_wait.total_seconds() if isinstance(max_wait, timedelta) else float(max_wait)
    return time.time() + seconds


__all__ = [
    "CIJobCallbackTrigger",
    "CIJobEventTrigger",
    "CIJobTrigger",
    "cancel_job_best_effort",
    "deadline_from",
]
