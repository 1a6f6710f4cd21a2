"""The job list ``GET /jobs``: its documented query filters, checked, then applied to the bucket's jobs.

Filters (intl 1045/73114, cn 460/84766): ``tag`` (required by the emulator, as by the older pages), ``queueType``
(optional: Transcoding | Speeching | PicProcess | AIProcess | SpeedTranscoding; SegmentVideoBody jobs run on the AI
queue, so they list under AIProcess or with no queueType), ``queueId``, ``inputObject`` (exact match),
``workflowId``, ``states`` (All or a comma list), ``startCreationTime`` / ``endCreationTime``
(``2001-01-01T00:00:00+0800``), ``size`` (1..100, default 10), ``nextToken``, ``orderByTime`` (Desc | Asc).
Every invalid value answers 400 InvalidArgument naming the parameter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from .facts import (
    ALL_STATES,
    JOB_QUEUE_TYPE,
    LIST_DEFAULT_SIZE,
    LIST_MAX_SIZE,
    LIST_ORDERS,
    QUEUE_TYPES,
    parse_time,
)
from .record import JobRecord
from .submit import bad_argument


@dataclass(frozen=True)
class ListQuery:
    tag: str
    queue_type: str | None = None
    queue_id: str | None = None
    input_object: str | None = None
    workflow_id: str | None = None
    states: frozenset[str] | None = None  # None: All
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None
    size: int = LIST_DEFAULT_SIZE
    next_token: str | None = None
    order: str = "Desc"

    @classmethod
    def parse(cls, q: dict[str, str]) -> ListQuery:
        tag = q.get("tag", "")
        if not tag:
            raise bad_argument("tag is required")
        queue_type = q.get("queueType") or None
        if queue_type is not None and queue_type not in QUEUE_TYPES:
            raise bad_argument(f"queueType={queue_type!r} is invalid: must be one of {', '.join(QUEUE_TYPES)}")
        states_raw = q.get("states", "All") or "All"
        states: frozenset[str] | None = None
        if states_raw != "All":
            states = frozenset(s.strip() for s in states_raw.split(",") if s.strip())
            if not states or states - set(ALL_STATES):
                raise bad_argument(
                    f"states={states_raw!r} is invalid: use All or a comma list of {', '.join(ALL_STATES)}"
                )
        order = q.get("orderByTime", "Desc") or "Desc"
        if order not in LIST_ORDERS:
            raise bad_argument(f"orderByTime={order!r} is invalid: must be Desc or Asc")
        size_raw = q.get("size", str(LIST_DEFAULT_SIZE)) or str(LIST_DEFAULT_SIZE)
        if not size_raw.isdigit() or not 1 <= int(size_raw) <= LIST_MAX_SIZE:
            raise bad_argument(f"size={size_raw!r} is invalid: must be an integer within [1, {LIST_MAX_SIZE}]")
        return cls(
            tag=tag,
            queue_type=queue_type,
            queue_id=q.get("queueId") or None,
            input_object=q.get("inputObject") or None,
            workflow_id=q.get("workflowId") or None,
            states=states,
            start=_bound(q, "startCreationTime"),
            end=_bound(q, "endCreationTime"),
            size=int(size_raw),
            next_token=q.get("nextToken") or None,
            order=order,
        )

    def matches(self, record: JobRecord) -> bool:
        detail = record.detail
        # Whole seconds: the time format has no fraction, so a job created at 10:00:00.7 matches an end of 10:00:00.
        created = int(record.created)
        checks = (
            detail.tag == self.tag,
            self.queue_type in (None, JOB_QUEUE_TYPE),
            self.queue_id in (None, detail.queue_id),
            self.input_object is None or detail.input["Object"] == self.input_object.lstrip("/"),
            self.workflow_id is None
            or (detail.workflow is not None and detail.workflow.workflow_id == self.workflow_id),
            self.states is None or detail.state in self.states,
            self.start is None or created >= self.start,
            self.end is None or created <= self.end,
        )
        return all(checks)

    def page(self, records: Iterable[JobRecord]) -> tuple[list[JobRecord], str]:
        """The requested page of ``records`` (one bucket's jobs) and the NextToken ("" on the last page)."""
        jobs = sorted((r for r in records if self.matches(r)), key=lambda r: (r.created, r.seq))
        if self.order == "Desc":
            jobs.reverse()
        if self.next_token:
            pos = next((i for i, r in enumerate(jobs) if page_token(r) == self.next_token), None)
            if pos is None:
                raise bad_argument(f"nextToken={self.next_token!r} is invalid")
            jobs = jobs[pos + 1 :]
        page = jobs[: self.size]
        return page, page_token(page[-1]) if len(jobs) > self.size else ""


def _bound(q: dict[str, str], name: str) -> float | None:
    raw = q.get(name, "")
    if not raw:
        return None
    dt = parse_time(raw)
    if dt is None:
        raise bad_argument(f"{name}={raw!r} is invalid: format is like 2001-01-01T00:00:00+0800")
    return dt.timestamp()


def page_token(record: JobRecord) -> str:
    return hashlib.md5(f"token:{record.job_id}".encode()).hexdigest()
