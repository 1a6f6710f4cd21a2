"""HTTP handlers of the CI job API on ``<bucket>.ci.<region>.myqcloud.com``: submit, query, list, cancel.

They parse and answer; everything about jobs goes through the engine's public methods.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import unquote

from ..protocol import CosError, EmuRequest, EmuResponse
from ..store import ObjectStore
from ..xmlutil import to_xml
from .engine import DEFAULT_WORKFLOW_NAME, JobEngine, NotCancellable, UnknownJob
from .listing import ListQuery
from .submit import bad_argument, parse_submit


class JobsState(Protocol):
    """What the handlers use of the emulator's shared state (``core.EmulatorState``)."""

    store: ObjectStore
    default_region: str
    jobs: JobEngine


def _require_bucket(state: JobsState, bucket: str | None) -> str:
    if not bucket or not state.store.has_bucket(bucket):
        raise CosError(404, "NoSuchBucket", f"The specified bucket does not exist: {bucket}")
    return bucket


def _xml_response(value: dict[str, Any]) -> EmuResponse:
    return EmuResponse(200, to_xml("Response", value), {}, "application/xml")


def _ids_from_path(req: EmuRequest) -> list[str]:
    rest = req.path.split("/jobs/", 1)[1] if "/jobs/" in req.path else ""
    rest = unquote(rest)  # tolerate a still-encoded %2C
    return [i.strip() for i in rest.split(",") if i.strip()]


async def handle_create(state: JobsState, req: EmuRequest) -> EmuResponse:
    """POST /jobs: submit a SegmentVideoBody job."""
    bucket = _require_bucket(state, req.bucket)
    spec = parse_submit(state.store, req.body, bucket, req.region or state.default_region)
    return _xml_response({"JobsDetail": state.jobs.create(bucket, spec)})


async def handle_describe(state: JobsState, req: EmuRequest) -> EmuResponse:
    """GET /jobs/<id1,id2,...>: JobsDetail for known ids, NonExistJobIds for the rest (omitted when none)."""
    bucket = _require_bucket(state, req.bucket)
    ids = _ids_from_path(req)
    if not ids:
        raise bad_argument("at least one job id is required")
    found, missing = state.jobs.describe(bucket, ids)
    value: dict[str, Any] = {}
    if found:
        value["JobsDetail"] = found
    if missing:
        value["NonExistJobIds"] = missing
    return _xml_response(value)


async def handle_list(state: JobsState, req: EmuRequest) -> EmuResponse:
    """GET /jobs?tag=...: filtered, ordered, paginated by nextToken (see :mod:`.listing`)."""
    bucket = _require_bucket(state, req.bucket)
    page, next_token = state.jobs.list_page(bucket, ListQuery.parse(req.query))
    value: dict[str, Any] = {}
    if page:
        value["JobsDetail"] = page
    value["NextToken"] = next_token
    return _xml_response(value)


async def handle_cancel(state: JobsState, req: EmuRequest) -> EmuResponse:
    """PUT /jobs/<id>?cancel: 200 with an empty body; only a job that has not started (Submitted, Pause) can be
    cancelled (cn 1246/109264). The error for any other job is not documented: 400 InvalidArgument (not confirmed)."""
    bucket = _require_bucket(state, req.bucket)
    ids = _ids_from_path(req)
    if len(ids) != 1:
        raise bad_argument("exactly one job id is required")
    try:
        state.jobs.cancel(bucket, ids[0])
    except UnknownJob:
        raise CosError(404, "NoSuchJob", f"job {ids[0]} does not exist") from None
    except NotCancellable as exc:
        raise bad_argument(str(exc)) from None
    return EmuResponse(200, b"", {}, "application/xml")


def start_workflow_job(
    state: JobsState, bucket: str, request: dict[str, Any], workflow_name: str = DEFAULT_WORKFLOW_NAME
) -> dict[str, Any]:
    """Emulator only: start a job as a workflow would (CI starts workflows on upload; the emulator has none).

    ``request`` is a SubmitJob ``<Request>`` as a dict (the shape ``ci_create_media_jobs`` takes), checked by the same
    rules; its CallBack settings stand for the workflow's. Returns the JobsDetail (with its ``Workflow`` node).
    """
    _require_bucket(state, bucket)
    spec = parse_submit(state.store, to_xml("Request", request), bucket, state.default_region)
    return state.jobs.create_from_workflow(bucket, spec, workflow_name)
