"""The job engine: job records, the timed state machine, test control, persistence.

States follow the job API: Submitted -> Running -> Success | Failed, plus Pause (a paused queue holds a job that
has not started) and Cancel (only jobs that have not started can be cancelled). Durations are configurable
(``set_timing``); tests drive outcomes with ``force_outcome`` / ``pause`` / ``resume``. When a job ends its callbacks
go out through :class:`CallbackSender`.

Threading: handlers and timers run on the server's event loop. Every public method may be called from any thread:
records change under one lock, and task work is handed to the loop. Public methods return copies (plain data), never
the records themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..faults import FaultInjector
from ..protocol import CosError
from ..store import ObjectStore
from .callbacks import CallbackSender, CallbackVariants
from .facts import (
    ACTIVE,
    ALL_STATES,
    CANCEL,
    CANCELLABLE,
    FAILED,
    NOT_YET,
    PAUSE,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    TAG,
    TERMINAL,
    format_time,
)
from .listing import ListQuery
from .loop import LoopBridge
from .output import media_fields, produce_output
from .record import JobRecord, JobsDetail, WorkflowRun
from .submit import SubmitSpec, logo_source

DEFAULT_QUEUE_SECONDS = 0.2
DEFAULT_RUN_SECONDS = 0.5
DEFAULT_WORKFLOW_NAME = "emulator-workflow"


class UnknownJob(LookupError):
    """No job with that id in that bucket."""


class NotCancellable(Exception):
    """The job has started or ended: only a job still waiting to run can be cancelled."""

    def __init__(self, job_id: str, state: str) -> None:
        super().__init__(f"job {job_id} is {state}: only Submitted or Pause jobs can be cancelled")
        self.state = state


class JobEngine:
    """Job records, their timers, and callbacks. One per EmulatorState."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        faults: FaultInjector,
        clock: Callable[[], datetime],
        data_dir: Path | None = None,
    ) -> None:
        self._store = store
        self._faults = faults
        self._clock = clock
        self._path = None if data_dir is None else data_dir / "jobs.json"
        self._lock = threading.RLock()
        self._jobs: dict[str, JobRecord] = {}
        self._seq = 0
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._bridge = LoopBridge()
        self._callbacks = CallbackSender(faults, self._now, self._bridge)
        self.queue_seconds = DEFAULT_QUEUE_SECONDS
        self.run_seconds = DEFAULT_RUN_SECONDS
        self._load()

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._bridge.attach()
        with self._lock:
            active = [r.job_id for r in self._jobs.values() if r.state in ACTIVE and not r.held]
        for job_id in active:  # resume timers after a restart
            self._start_timer(job_id)

    async def stop(self) -> None:
        timers = list(self._timers.values())
        for task in timers:
            task.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        self._timers.clear()
        await self._callbacks.stop()
        self._save()
        self._bridge.detach()

    def reset(self) -> None:
        """Forget every job and callback; timings and callback variants back to the defaults."""
        self._bridge.call(self._cancel_all_timers)
        self._bridge.call(self._callbacks.cancel_all)
        self._callbacks.forget()
        with self._lock:
            self._jobs.clear()
            self._seq = 0
            self.queue_seconds = DEFAULT_QUEUE_SECONDS
            self.run_seconds = DEFAULT_RUN_SECONDS
        self._save()

    # -- the API's operations (handlers) --------------------------------------------------------------------
    def queue_id(self, bucket: str) -> str:
        """The bucket's AI Content Recognition queue (the one queue SegmentVideoBody jobs run on)."""
        return "p" + hashlib.md5(f"queue:{bucket}".encode()).hexdigest()

    def create(self, bucket: str, spec: SubmitSpec, workflow: WorkflowRun | None = None) -> dict[str, Any]:
        """Create a Submitted job; returns its JobsDetail."""
        now = self._now()
        with self._lock:
            self._seq += 1
            record = JobRecord(
                detail=JobsDetail(
                    job_id="a" + uuid.uuid4().hex,
                    queue_id=self.queue_id(bucket),
                    creation_time=format_time(now),
                    input=dict(spec.input),
                    operation=copy.deepcopy(spec.operation),
                    workflow=workflow,
                ),
                bucket=bucket,
                seq=self._seq,
                created=now.timestamp(),
                phase_started=now.timestamp(),
                callback=copy.deepcopy(spec.callback),
            )
            self._jobs[record.job_id] = record
            self._save()
            detail = record.detail.render()
        self._start_timer(record.job_id)
        return detail

    def create_from_workflow(
        self, bucket: str, spec: SubmitSpec, workflow_name: str = DEFAULT_WORKFLOW_NAME
    ) -> dict[str, Any]:
        """Emulator only: a job as a one-node workflow run starts it (a ``<Workflow>`` node, and a WorkflowFinish
        callback after its TaskFinish)."""
        digest = hashlib.md5(f"workflow:{bucket}:{workflow_name}".encode()).hexdigest()
        workflow = WorkflowRun(
            name=f"{TAG}_1",
            run_id="i" + uuid.uuid4().hex,
            workflow_id="w" + digest,
            workflow_name=workflow_name,
        )
        return self.create(bucket, spec, workflow)

    def describe(self, bucket: str, job_ids: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """(JobsDetail of the known ids, the ids that do not exist in ``bucket``), in request order."""
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        with self._lock:
            for job_id in job_ids:
                record = self._jobs.get(job_id)
                if record is None or record.bucket != bucket:
                    missing.append(job_id)
                else:
                    found.append(record.detail.render())
        return found, missing

    def list_page(self, bucket: str, query: ListQuery) -> tuple[list[dict[str, Any]], str]:
        """One page of the bucket's jobs matching ``query``, and the NextToken."""
        with self._lock:
            page, token = query.page(r for r in self._jobs.values() if r.bucket == bucket)
            return [r.detail.render() for r in page], token

    def cancel(self, bucket: str, job_id: str) -> None:
        with self._lock:
            record = self._jobs.get(job_id)
            if record is None or record.bucket != bucket:
                raise UnknownJob(job_id)
            if record.state not in CANCELLABLE:
                raise NotCancellable(job_id, record.state)
            self._cancel_timer(job_id)
            self._finish(record, CANCEL)

    # -- inspection ------------------------------------------------------------------------------------------
    def list_jobs(self) -> list[dict[str, Any]]:
        """Every job as plain data, in creation order (``emu.jobs``)."""
        with self._lock:
            return [r.view() for r in sorted(self._jobs.values(), key=lambda r: r.seq)]

    @property
    def callbacks_sent(self) -> list[dict[str, Any]]:
        return self._callbacks.sent

    # -- test control ----------------------------------------------------------------------------------------
    def set_callback_variants(self, variants: CallbackVariants) -> None:
        self._callbacks.set_variants(variants)

    def set_timing(self, queue_seconds: float, run_seconds: float) -> None:
        if queue_seconds < 0 or run_seconds < 0:
            raise ValueError("job timings must be >= 0 seconds")
        with self._lock:
            self.queue_seconds = float(queue_seconds)
            self.run_seconds = float(run_seconds)
            active = [r.job_id for r in self._jobs.values() if r.state in ACTIVE and not r.held]
        self._save()  # the timing persists with the jobs: a restarted emulator keeps its pace
        for job_id in active:  # re-arm with the new durations (elapsed time in the phase still counts)
            self._start_timer(job_id)

    def force_outcome(self, job_id: str, state: str, code: str | None = None, message: str | None = None) -> None:
        """Put a job into ``state`` now (any state; a terminal one ends the job and sends its callback)."""
        if state not in ALL_STATES:
            raise ValueError(f"state={state!r}: must be one of {', '.join(ALL_STATES)}")
        with self._lock:
            record = self._require(job_id)
            if state in TERMINAL:
                self._cancel_timer(job_id)
                self._finish(record, state, code, message, write_output=state == SUCCESS)
                return
            now = self._now()
            detail = record.detail
            detail.state = state
            record.held = False
            record.phase_started = now.timestamp()
            if state == RUNNING and detail.start_time == NOT_YET:
                detail.start_time = format_time(now)
            if code is not None:
                detail.code = code
            if message is not None:
                detail.message = message
            self._save()
        if state == PAUSE:
            self._cancel_timer(job_id)
        else:
            self._start_timer(job_id)

    def pause(self, job_id: str) -> None:
        """A job not yet started goes to Pause (as in a paused queue); a Running job is held where it is."""
        with self._lock:
            record = self._require(job_id)
            if record.state == SUBMITTED:
                record.detail.state = PAUSE
            elif record.state == RUNNING:
                record.held = True
                record.held_elapsed = self._now().timestamp() - record.phase_started
            else:
                return
            self._save()
        self._cancel_timer(job_id)

    def resume(self, job_id: str) -> None:
        with self._lock:
            record = self._require(job_id)
            now = self._now().timestamp()
            if record.state == PAUSE:
                record.detail.state = SUBMITTED
                record.phase_started = now
            elif record.state == RUNNING and record.held:
                record.held = False
                record.phase_started = now - record.held_elapsed
                record.held_elapsed = 0.0
            else:
                return
            self._save()
        self._start_timer(job_id)

    # -- records ---------------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo else now.replace(tzinfo=timezone.utc)

    def _require(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise KeyError(f"no such job: {job_id}")
        return record

    def _is_current(self, record: JobRecord, state: str) -> bool:
        """``record`` is still the stored one, in ``state`` and not held (nothing forced, held or reset it)."""
        return self._jobs.get(record.job_id) is record and record.state == state and not record.held

    def _finish(
        self,
        record: JobRecord,
        state: str,
        code: str | None = None,
        message: str | None = None,
        write_output: bool = False,
        output: tuple[bytes, str] | None = None,
    ) -> None:
        """Enter a terminal state (under the lock), write the output on Success, send the callbacks."""
        now = self._now()
        detail = record.detail
        if detail.start_time == NOT_YET and state != CANCEL:
            detail.start_time = format_time(now)
        detail.state = state
        detail.end_time = format_time(now)
        record.held = False
        if state == FAILED:
            detail.code = code or "InternalError"
            detail.message = message or "the job failed"
        elif state == SUCCESS:
            detail.code, detail.message = code or "Success", message or ""
        else:
            detail.code = code or "Success"
            detail.message = message if message is not None else "job canceled"
        if write_output:
            self._write_output(record, output)
        self._save()
        self._callbacks.emit(copy.deepcopy(record))

    def _write_output(self, record: JobRecord, output: tuple[bytes, str] | None) -> None:
        detail = record.detail
        out = detail.operation["Output"]
        if output is None:  # forced Success: derive from the input without pixel work
            src = self._store.get(record.bucket, detail.input["Object"])
            output = (bytes(src.data), src.content_type) if src is not None else (b"", "video/mp4")
        data, content_type = output
        written = self._store.put(out["Bucket"], out["Object"], data, content_type=content_type)
        detail.operation.update(media_fields(out, written.size, content_type))

    # -- the state machine -----------------------------------------------------------------------------------
    def _start_timer(self, job_id: str) -> None:
        self._bridge.call(self._start_timer_now, job_id)

    def _start_timer_now(self, job_id: str) -> None:
        self._cancel_timer_now(job_id)
        loop = self._bridge.loop
        if loop is None:
            return  # not serving yet: start() arms the timers
        self._timers[job_id] = loop.create_task(self._drive(job_id))

    def _cancel_timer(self, job_id: str) -> None:
        self._bridge.call(self._cancel_timer_now, job_id)

    def _cancel_timer_now(self, job_id: str) -> None:
        task = self._timers.pop(job_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _cancel_all_timers(self) -> None:
        for task in list(self._timers.values()):
            if task is not asyncio.current_task():
                task.cancel()
        self._timers.clear()

    async def _drive(self, job_id: str) -> None:
        try:
            while True:
                with self._lock:
                    record = self._jobs.get(job_id)
                    if record is None or record.state not in ACTIVE or record.held:
                        return
                    phase = record.state
                    duration = self.queue_seconds if phase == SUBMITTED else self.run_seconds
                    remaining = duration - (self._now().timestamp() - record.phase_started)
                if remaining > 0:
                    await asyncio.sleep(remaining)
                with self._lock:
                    if not self._is_current(record, phase):
                        return
                    if phase == SUBMITTED:
                        now = self._now()
                        record.detail.state = RUNNING
                        record.detail.start_time = format_time(now)
                        record.phase_started = now.timestamp()
                        self._save()
                        continue
                await self._complete(record)
                return
        except asyncio.CancelledError:
            return
        finally:
            if self._timers.get(job_id) is asyncio.current_task():
                del self._timers[job_id]

    async def _complete(self, record: JobRecord) -> None:
        """Running -> Success with a real output, or Failed when the input vanished or cannot be processed."""
        with self._lock:
            bucket, obj = record.bucket, record.detail.input["Object"]
            svb = dict(record.detail.operation["SegmentVideoBody"])
        src = self._store.get(bucket, obj)
        if src is None:
            with self._lock:
                if self._is_current(record, RUNNING):
                    self._finish(record, FAILED, "InputFileNotExist", f"input object {obj} does not exist")
            return
        logo: bytes | None = None
        if svb.get("BackgroundLogoUrl"):
            with contextlib.suppress(CosError):
                logo_bucket, logo_key = logo_source(self._store, bucket, svb["BackgroundLogoUrl"])
                found = self._store.get(logo_bucket, logo_key)
                logo = bytes(found.data) if found is not None else None
        skip = self._faults.skip_pixel_work
        try:
            output = await asyncio.to_thread(produce_output, bytes(src.data), svb, logo, skip)
        except Exception as exc:  # a broken input fails the job, as a real transcoder would
            with self._lock:
                if self._is_current(record, RUNNING):
                    self._finish(record, FAILED, "InternalError", f"processing failed: {exc}")
            return
        with self._lock:
            if self._is_current(record, RUNNING):
                self._finish(record, SUCCESS, write_output=True, output=output)

    # -- persistence -----------------------------------------------------------------------------------------
    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            doc = json.loads(self._path.read_text("utf-8"))
            records = [JobRecord.from_json(job) for job in doc.get("jobs", [])]
        except (OSError, ValueError, KeyError, TypeError):
            return  # unreadable (or written by an older emulator): start empty
        self._seq = int(doc.get("seq", 0))
        timing = doc.get("timing") or {}
        self.queue_seconds = float(timing.get("queue_seconds", self.queue_seconds))
        self.run_seconds = float(timing.get("run_seconds", self.run_seconds))
        self._jobs = {r.job_id: r for r in records}

    def _save(self) -> None:
        if self._path is None:
            return
        with self._lock:
            doc = {
                "seq": self._seq,
                "timing": {"queue_seconds": self.queue_seconds, "run_seconds": self.run_seconds},
                "jobs": [r.to_json() for r in sorted(self._jobs.values(), key=lambda r: r.seq)],
            }
            text = json.dumps(doc, ensure_ascii=False)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f"{self._path.name}.tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text, "utf-8")
        os.replace(tmp, self._path)
