"""What a CI callback body says, read by what the body is (not by its Content-Type header).

Wire formats (sources):
- TaskFinish: ``<Response><EventName>TaskFinish</EventName><JobsDetail>...</JobsDetail></Response>`` (cn 460/84954,
  cn 436/77604; cos-go-sdk-v5 ``ci_media.go`` ``MediaProcessJobsNotifyBody``), or the JSON equivalent with
  ``CallBackFormat=JSON`` (``JobsDetail`` as one object or a list, numbers possibly as numbers). A job started by a
  workflow reports TaskFinish whose JobsDetail has a ``<Workflow>`` node (Name, RunId, WorkflowId, WorkflowName;
  ``MediaProcessJobDetail.Workflow`` in ``ci_media.go``).
- WorkflowFinish: ``<Response><EventName>WorkflowFinish</EventName><WorkflowExecution>`` with RunId, BucketId,
  Object, CosHeaders, WorkflowId, WorkflowName, CreateTime, State and ``Tasks`` (Type, CreateTime, EndTime, State,
  JobId, Name, TemplateId, TemplateName, ResultInfo) and no JobsDetail (intl 436/48042; cos-go-sdk-v5
  ``ci_media.go`` ``WorkflowExecutionNotifyBody``, commit cc9846d9e7f6c43e23e79884174230f0bd7c9b9f).
- The pages say the body "is returned as application/xml" and also show JSON samples: the first significant byte
  decides (``<`` XML, ``{`` JSON), whatever the header says.

Limits: the size cap is the receiver's; XML goes through ``common.xml`` (defusedxml: no entities, no external
references; depth bounded); JSON nesting is bounded the same way. Every scalar becomes a string, as the XML API
reads. ``cost`` estimates the memory the parsed message holds, which is what buffering it costs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_tencent_ci.common.xml import MAX_DEPTH, XmlParseError, as_list, parse_xml, unwrap_response
from airflow_provider_tencent_ci.constants import CALLBACK_EVENT_TASK_FINISH, CALLBACK_EVENT_WORKFLOW_FINISH

# A callback reports one job (Go: ``JobsDetail *MediaProcessJobDetail``) or one workflow run's few tasks.
MAX_ENTRIES = 100
# Rough CPython sizes (64-bit) for the cost estimate: a str header, a dict or list header, one slot.
_STR_COST, _CONTAINER_COST, _SLOT_COST = 50, 64, 100
_UTF8_BOM = b"\xef\xbb\xbf"


class CallbackParseError(ValueError):
    pass


@dataclass
class CallbackMessage:
    """One parsed callback (all scalars as strings).

    :ivar event_name: ``TaskFinish`` or ``WorkflowFinish`` (TaskFinish when absent).
    :ivar jobs: the JobsDetail entries (empty for WorkflowFinish).
    :ivar workflow: the WorkflowExecution of a WorkflowFinish, else the ``Workflow`` node of a workflow job's
        JobsDetail, else None.
    :ivar fmt: ``XML`` or ``JSON`` (what the body was).
    :ivar cost: estimated bytes the parsed message holds in memory.
    """

    event_name: str
    jobs: list[dict[str, Any]]
    fmt: str
    workflow: dict[str, Any] | None = None
    cost: int = 0
    received_at: float = field(default_factory=time.time)

    def _tasks(self) -> list[dict[str, Any]]:
        if self.jobs or not self.workflow:
            return []
        return [t for t in as_list(self.workflow.get("Tasks")) if isinstance(t, dict)]

    def job_ids(self) -> list[str]:
        """The job ids the callback names, unique, in order (JobsDetail, or a WorkflowFinish's tasks)."""
        ids = [str(j.get("JobId") or "") for j in self.jobs] + [str(t.get("JobId") or "") for t in self._tasks()]
        return list(dict.fromkeys(i for i in ids if i))

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        """What the callback claims about one job: its JobsDetail entries, or its WorkflowFinish task entries."""
        return [j for j in self.jobs + self._tasks() if j.get("JobId") == job_id]


class _Normaliser:
    """Scalars to strings, depth bounded, with a running memory-cost estimate."""

    def __init__(self) -> None:
        self.cost = 0

    def __call__(self, value: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise CallbackParseError(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            self.cost += _CONTAINER_COST + _SLOT_COST * len(value)
            return {self._str(k): self(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            self.cost += _CONTAINER_COST + _SLOT_COST * len(value)
            return [self(v, depth + 1) for v in value]
        if value is None:
            return self._str("")
        if isinstance(value, bool):
            return self._str("true" if value else "false")
        return self._str(value)

    def _str(self, value: Any) -> str:
        text = str(value)
        self.cost += _STR_COST + len(text)
        return text


def _load(body: bytes) -> tuple[dict[str, Any], str]:
    text = body.strip()
    if text.startswith(_UTF8_BOM):
        text = text[len(_UTF8_BOM) :].lstrip()
    if text[:1] == b"<":
        try:
            return dict(unwrap_response(parse_xml(text, root="Response"))), "XML"
        except XmlParseError as err:
            raise CallbackParseError(str(err)) from None
    if text[:1] in (b"{", b"["):
        try:
            doc = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise CallbackParseError(f"invalid JSON: {err}") from None
        except RecursionError:
            raise CallbackParseError("invalid JSON: nested too deeply") from None
        doc = unwrap_response(doc) if isinstance(doc, dict) else doc
        if not isinstance(doc, dict):
            raise CallbackParseError("a JSON callback must be an object")
        return dict(doc), "JSON"
    raise CallbackParseError("empty body" if not text else "the body is neither XML nor JSON")


def _entries(value: Any, what: str) -> list[dict[str, Any]]:
    entries = as_list(value)
    if len(entries) > MAX_ENTRIES:
        raise CallbackParseError(f"more than {MAX_ENTRIES} {what} entries")
    if not all(isinstance(e, dict) for e in entries):
        raise CallbackParseError(f"{what} entries must be objects")
    return entries


def parse_callback(body: bytes, content_type: str = "") -> CallbackMessage:
    """Parse a CI callback body (XML or JSON, whatever ``content_type`` says; it is accepted for compatibility).

    :raises CallbackParseError: malformed, unsafe, too deep, too many entries, or no job/workflow to report.
    """
    doc, fmt = _load(body)
    normalise = _Normaliser()
    event_name = doc.get("EventName") or CALLBACK_EVENT_TASK_FINISH
    if not isinstance(event_name, (str, int)):
        raise CallbackParseError("EventName must be a string")
    event_name = str(event_name)
    jobs = [normalise(d) for d in _entries(doc.get("JobsDetail"), "JobsDetail")]
    workflow: dict[str, Any] | None = None
    execution = doc.get("WorkflowExecution")
    if jobs:
        if any(not j.get("JobId") or not j.get("State") for j in jobs):
            raise CallbackParseError("JobsDetail without JobId or State")
        node = next((j["Workflow"] for j in jobs if j.get("Workflow")), None)
        first = as_list(node)[0] if node else None
        workflow = first if isinstance(first, dict) else None
    elif execution is not None:
        if not isinstance(execution, dict):
            raise CallbackParseError("WorkflowExecution must be an object")
        tasks = _entries(execution.get("Tasks"), "WorkflowExecution Tasks")
        workflow = normalise({**execution, "Tasks": tasks})
        if not workflow.get("RunId") or not workflow.get("State"):
            raise CallbackParseError("WorkflowExecution without RunId or State")
        if doc.get("EventName") is None:
            event_name = CALLBACK_EVENT_WORKFLOW_FINISH
    else:
        raise CallbackParseError("no JobsDetail or WorkflowExecution")
    return CallbackMessage(event_name=event_name, jobs=jobs, fmt=fmt, workflow=workflow, cost=normalise.cost)
