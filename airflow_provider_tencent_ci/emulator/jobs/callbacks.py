"""Job completion callbacks: the bodies CI may send, and their delivery with retries and injected faults.

Body shapes (cn 460/84954, cn 436/77604, intl 436/48042, cos-go-sdk-v5 ``ci_media.go`` at commit cc9846d9:
``MediaProcessJobsNotifyBody``, ``JobsNotifyBody``, ``WorkflowExecutionNotifyBody``):

- TaskFinish, XML (the default): ``<Response><EventName>TaskFinish</EventName><JobsDetail>...</JobsDetail>
  </Response>``, the JobsDetail of a query. A job a workflow started carries a ``<Workflow>`` node in it.
- TaskFinish, JSON (CallBackFormat=JSON): ``{"EventName": "TaskFinish", "JobsDetail": [...]}``; the pages show
  JobsDetail both as a list and as one object.
- WorkflowFinish (jobs a workflow started, after their TaskFinish): ``<Response><EventName>WorkflowFinish
  </EventName><WorkflowExecution>`` with RunId, BucketId, Object, WorkflowId, WorkflowName, CreateTime, State and
  Tasks[Type, CreateTime, StartTime, EndTime, State, JobId, Name] (Go ``WorkflowExecutionNotifyBody``; StartTime
  from intl 436/48042), and no JobsDetail.

The pages say the body "is returned as application/xml" and also show JSON samples, so a JSON body may arrive under
either content type. :class:`CallbackVariants` selects the content type of JSON bodies and the JSON shape of
JobsDetail (and Tasks), fixed or drawn per callback from a seeded random stream.

``CallBack=no`` or none sends nothing; CallBackType=TDMQ is recorded but not sent. Each body passes through the
fault injector's ``callback_plan()`` (drop, duplicate, delay). Every attempt is recorded (``callbacks_sent``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ..faults import FaultInjector
from ..xmlutil import to_xml
from .loop import LoopBridge
from .record import JobRecord, WorkflowRun

TASK_FINISH = "TaskFinish"
WORKFLOW_FINISH = "WorkflowFinish"
XML_CONTENT_TYPE = "application/xml"
JSON_CONTENT_TYPE = "application/json"
RANDOM = "random"
JSON_CONTENT_TYPES = (JSON_CONTENT_TYPE, XML_CONTENT_TYPE)
JSON_SHAPES = ("list", "object")
ATTEMPTS = 3
BACKOFF = (0.1, 0.3)
TIMEOUT = 5.0
REORDER_MAX_DELAY = 0.3
REORDER_SEED = 7
Repeated = Callable[[list[dict[str, Any]]], Any]  # how a repeated element (JobsDetail, Tasks) is written


@dataclass(frozen=True)
class CallbackVariants:
    """How JSON callbacks look. Each knob is a fixed value or ``"random"`` (drawn per callback, seeded by ``seed``).

    ``json_content_type``: the Content-Type of a JSON body, ``application/json`` or ``application/xml``.
    ``jobs_detail``: a JSON body's JobsDetail (and a WorkflowFinish's Tasks) as a ``list`` or one ``object``.
    XML bodies are always ``application/xml`` (one element reads the same as a list of one).
    """

    json_content_type: str = JSON_CONTENT_TYPE
    jobs_detail: str = "list"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("json_content_type", JSON_CONTENT_TYPES), ("jobs_detail", JSON_SHAPES)):
            value = getattr(self, name)
            if value != RANDOM and value not in allowed:
                raise ValueError(f"CallbackVariants.{name}={value!r}: must be one of {', '.join(allowed)} or random")


@dataclass(frozen=True)
class CallbackBody:
    event: str
    format: str  # "XML" | "JSON"
    content_type: str
    shape: str | None  # JSON only
    text: str


def _shaped(items: list[dict[str, Any]], shape: str) -> Any:
    return items[0] if shape == "object" and len(items) == 1 else items


def workflow_execution(record: JobRecord, workflow: WorkflowRun, repeated: Repeated) -> dict[str, Any]:
    """The WorkflowExecution of the one-task workflow run that started ``record`` (Go WorkflowExecutionNotifyBody)."""
    detail = record.detail
    task = {
        "Type": detail.tag,
        "CreateTime": detail.creation_time,
        "StartTime": detail.start_time,
        "EndTime": detail.end_time,
        "State": detail.state,
        "JobId": detail.job_id,
        "Name": workflow.name,
    }
    return {
        "RunId": workflow.run_id,
        "BucketId": record.bucket,
        "Object": detail.input["Object"],
        "WorkflowId": workflow.workflow_id,
        "WorkflowName": workflow.workflow_name,
        "CreateTime": detail.creation_time,
        "State": detail.state,
        "Tasks": repeated([task]),
    }


def _payload(record: JobRecord, event: str, repeated: Repeated) -> dict[str, Any]:
    workflow = record.detail.workflow
    if event == WORKFLOW_FINISH and workflow is not None:
        return {"EventName": event, "WorkflowExecution": workflow_execution(record, workflow, repeated)}
    return {"EventName": TASK_FINISH, "JobsDetail": repeated([record.detail.render()])}


def render_body(record: JobRecord, event: str, content_type: str, shape: str) -> CallbackBody:
    """One callback body in the job's CallBackFormat; ``content_type`` and ``shape`` apply to JSON only."""
    if record.callback.format == "JSON":
        payload = _payload(record, event, lambda items: _shaped(items, shape))
        return CallbackBody(event, "JSON", content_type, shape, json.dumps(payload, ensure_ascii=False))
    payload = _payload(record, event, list)  # XML: a list renders as repeated elements, one reads as an object
    return CallbackBody(event, "XML", XML_CONTENT_TYPE, None, to_xml("Response", payload).decode("utf-8"))


class CallbackSender:
    """Builds, sends and records callbacks. Sends run as tasks on the engine's loop."""

    def __init__(self, faults: FaultInjector, clock: Callable[[], datetime], bridge: LoopBridge) -> None:
        self._faults = faults
        self._clock = clock
        self._bridge = bridge
        self._lock = threading.Lock()
        self._sent: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._reorder_rng = random.Random(REORDER_SEED)
        self.attempts = ATTEMPTS
        self.backoff: tuple[float, ...] = BACKOFF
        self.variants = CallbackVariants()
        self._variant_rng = random.Random(self.variants.seed)

    # -- control --------------------------------------------------------------------------------------------
    def set_variants(self, variants: CallbackVariants) -> None:
        with self._lock:
            self.variants = variants
            self._variant_rng = random.Random(variants.seed)

    @property
    def sent(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._sent)

    def forget(self) -> None:
        """Forget what was sent; variants back to the default (any thread; pending sends: ``cancel_all``)."""
        with self._lock:
            self._sent.clear()
        self.set_variants(CallbackVariants())

    def cancel_all(self) -> None:
        """Cancel pending sends (call on the loop)."""
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks.clear()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- delivery -------------------------------------------------------------------------------------------
    def _pick(self, value: str, allowed: tuple[str, ...]) -> str:
        return self._variant_rng.choice(allowed) if value == RANDOM else value

    def _bodies(self, record: JobRecord) -> list[CallbackBody]:
        events = [TASK_FINISH] if record.detail.workflow is None else [TASK_FINISH, WORKFLOW_FINISH]
        bodies = []
        for event in events:
            with self._lock:
                content_type = self._pick(self.variants.json_content_type, JSON_CONTENT_TYPES)
                shape = self._pick(self.variants.jobs_detail, JSON_SHAPES)
            bodies.append(render_body(record, event, content_type, shape))
        return bodies

    def emit(self, record: JobRecord) -> None:
        """Send the callbacks of a job that just ended (``record`` is a snapshot; any thread)."""
        cfg = record.callback
        if cfg.type != "TDMQ" and not cfg.sends_http:
            return
        for body in self._bodies(record):
            base = {
                "job_id": record.job_id,
                "state": record.state,
                "event": body.event,
                "url": cfg.url,
                "format": body.format,
                "content_type": body.content_type,
                "shape": body.shape,
                "type": cfg.type,
                "body": body.text,
            }
            if cfg.type == "TDMQ":
                self._record({**base, "mq": cfg.mq, "status": None, "attempt": 0, "copy": 0, "dropped": False})
                continue
            plan = self._faults.callback_plan()
            if plan.drop:
                self._record({**base, "status": None, "attempt": 0, "copy": 0, "dropped": True})
                continue
            delay = float(plan.delay)
            if self._faults.callback_reorder:
                delay += self._reorder_rng.uniform(0.0, REORDER_MAX_DELAY)  # later jobs may report first
            for copy_no in range(max(1, int(plan.copies))):
                self._bridge.call(self._spawn, base, delay, copy_no)

    def _spawn(self, base: dict[str, Any], delay: float, copy_no: int) -> None:
        self._bridge.spawn(lambda: self._send(base, delay, copy_no), self._tasks)

    def _record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("time", self._clock().isoformat())
        with self._lock:
            self._sent.append(entry)

    async def _send(self, base: dict[str, Any], delay: float, copy_no: int) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        if self._client is None:
            self._client = httpx.AsyncClient(trust_env=False, timeout=TIMEOUT)
        for attempt in range(1, self.attempts + 1):
            status: int | None = None
            error: str | None = None
            try:
                resp = await self._client.post(
                    base["url"], content=base["body"].encode("utf-8"), headers={"Content-Type": base["content_type"]}
                )
                status = resp.status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            self._record(
                {**base, "status": status, "error": error, "attempt": attempt, "copy": copy_no, "dropped": False}
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff[min(attempt - 1, len(self.backoff) - 1)])
