"""A job as the emulator keeps it: the public JobsDetail (what queries, lists and callbacks render) held apart from
the engine's bookkeeping (bucket, ordering, timer phase, callback settings)."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from .facts import NOT_YET, SUBMITTED, TAG


@dataclass
class CallbackConfig:
    """The request's CallBack, CallBackFormat, CallBackType and CallBackMqConfig."""

    url: str | None = None
    format: str = "XML"
    type: str = "Url"
    mq: dict[str, str] | None = None

    @property
    def sends_http(self) -> bool:
        return self.type == "Url" and bool(self.url) and self.url != "no"


@dataclass
class WorkflowRun:
    """The ``<Workflow>`` node of a job a workflow started (cos-go-sdk-v5 ``ci_media.go`` MediaProcessJobDetail:
    Name, RunId, WorkflowId, WorkflowName)."""

    name: str
    run_id: str
    workflow_id: str
    workflow_name: str

    def render(self) -> dict[str, str]:
        return {
            "Name": self.name,
            "RunId": self.run_id,
            "WorkflowId": self.workflow_id,
            "WorkflowName": self.workflow_name,
        }


@dataclass
class JobsDetail:
    """One JobsDetail, rendered in the documented element order (seed response sample)."""

    job_id: str
    queue_id: str
    creation_time: str
    input: dict[str, str]
    operation: dict[str, Any]  # SegmentVideoBody, UserData, JobLevel, Output; MediaInfo, MediaResult once done
    state: str = SUBMITTED
    code: str = "Success"
    message: str = ""
    start_time: str = NOT_YET
    end_time: str = NOT_YET
    tag: str = TAG
    workflow: WorkflowRun | None = None

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Code": self.code,
            "Message": self.message,
            "JobId": self.job_id,
            "State": self.state,
            "CreationTime": self.creation_time,
            "StartTime": self.start_time,
            "EndTime": self.end_time,
            "QueueId": self.queue_id,
            "Tag": self.tag,
            "Input": dict(self.input),
            "Operation": copy.deepcopy(self.operation),
        }
        if self.workflow is not None:
            out["Workflow"] = self.workflow.render()
        return out


@dataclass
class JobRecord:
    detail: JobsDetail
    bucket: str
    seq: int  # creation order, the tie-breaker for jobs created in the same second
    created: float  # epoch seconds
    phase_started: float  # when the current Submitted/Running phase began (epoch seconds)
    callback: CallbackConfig = field(default_factory=CallbackConfig)
    held: bool = False  # a Running job paused by the test: its timer is stopped
    held_elapsed: float = 0.0  # time already spent Running when it was held

    @property
    def job_id(self) -> str:
        return self.detail.job_id

    @property
    def state(self) -> str:
        return self.detail.state

    def view(self) -> dict[str, Any]:
        """The record as plain data (``emu.jobs``, ``/_emulator/jobs``): the JobsDetail fields at the top level
        (JobId, State, Tag, ...), ``UserData``, ``bucket``, the rendered ``detail`` and the callback settings."""
        detail = self.detail.render()
        return {
            **detail,
            "UserData": self.detail.operation.get("UserData"),
            "bucket": self.bucket,
            "detail": detail,
            "callback": asdict(self.callback),
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        doc = dict(data)
        detail = dict(doc.pop("detail"))
        workflow = detail.pop("workflow", None)
        return cls(
            detail=JobsDetail(**detail, workflow=WorkflowRun(**workflow) if workflow else None),
            callback=CallbackConfig(**doc.pop("callback")),
            **doc,
        )
