"""How a CI job's state becomes an outcome, and an outcome the exception a task raises: the one place for both.

CI's JobsDetail ``State`` is one of Submitted, Running, Pause, Success, Failed, Cancel (``constants.JobState``,
from CI's DescribeMediaJob page). The operator's worker poll, the sensor's poke, both ``execute_complete`` methods
and the triggers all call :func:`job_outcome` and :func:`task_error`; the trigger event payload carries the
outcome's ``.value`` as ``status``.

Decisions made here, for every caller alike:

- **Pause** is not an end: the task keeps waiting (a paused job can be resumed in the console). With
  ``fail_on_pause=True`` it ends as :attr:`JobOutcome.PAUSED`, which raises ``CIJobFailedError`` with code
  ``Pause``; a sensor with ``soft_fail=True`` skips instead, as for Failed/Cancel.
- **Failed/Cancel** raise ``CIJobFailedError`` carrying CI's own ``Code`` and ``Message``.
- **A missing job** (CI lists it in ``NonExistJobIds``) can be briefly unknown right after CreateJob on the real
  service: it is an error only after :data:`MISSING_TOLERANCE` consecutive polls (``NoSuchJob``).
- **The max wait** raises ``AirflowSensorTimeout`` for a sensor (so ``soft_fail`` skips) and
  ``AirflowException`` for the operator.
- **A non-retryable query error** raises ``TencentCloudError`` with the service's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from airflow.exceptions import AirflowException

from airflow_provider_tencent_ci.constants import JOB_FAILED_STATES, SEGMENT_VIDEO_BODY_TAG, JobState
from airflow_provider_tencent_ci.exceptions import CIJobFailedError, TencentCloudError, classify

# Consecutive polls a job may be unknown to CI before waiting for it is an error.
MISSING_TOLERANCE = 3
NO_SUCH_JOB = "NoSuchJob"


class JobOutcome(str, Enum):
    """What a wait for a CI job has come to (``status`` of the task triggers' event payloads)."""

    WAITING = "waiting"  # Submitted, Running, Pause (without fail_on_pause), or not yet known to CI
    SUCCESS = "success"
    FAILED = "failed"  # Failed or Cancel
    PAUSED = "paused"  # Pause with fail_on_pause=True
    TIMEOUT = "timeout"  # the max wait passed
    ERROR = "error"  # a non-retryable query error, or the job does not exist

    @property
    def done(self) -> bool:
        return self is not JobOutcome.WAITING


def job_outcome(job: Mapping[str, Any] | None, *, fail_on_pause: bool = False, missing: int = 0) -> JobOutcome:
    """The outcome of one look at a job.

    :param job: the JobsDetail CI returned (None when CI did not return the job).
    :param fail_on_pause: Pause ends the wait as ``PAUSED`` instead of waiting on.
    :param missing: how many consecutive looks CI did not know the job (this one included).
    """
    if job is None:
        return JobOutcome.ERROR if missing >= MISSING_TOLERANCE else JobOutcome.WAITING
    state = job.get("State")
    if state == JobState.SUCCESS.value:
        return JobOutcome.SUCCESS
    if state in JOB_FAILED_STATES:
        return JobOutcome.FAILED
    if state == JobState.PAUSE.value and fail_on_pause:
        return JobOutcome.PAUSED
    return JobOutcome.WAITING


def event_payload(outcome: JobOutcome, job_id: str, job: Mapping[str, Any] | None = None, **extra: Any) -> dict:
    """A task trigger's event payload: ``status`` (the outcome's value), ``job_id``, and CI's view of the job."""
    payload: dict[str, Any] = {"status": outcome.value, "job_id": job_id}
    if job is not None:
        payload.update(state=job.get("State"), code=job.get("Code"), message=job.get("Message"), job=dict(job))
    payload.update(extra)
    return payload


def _missing_message(job_id: str) -> str:
    return f"CI job {job_id} does not exist"


def missing_payload(job_id: str) -> dict[str, Any]:
    """The event payload for a job CI does not know (after :data:`MISSING_TOLERANCE` looks)."""
    return event_payload(JobOutcome.ERROR, job_id, code=NO_SUCH_JOB, message=_missing_message(job_id))


def event_outcome(event: Mapping[str, Any]) -> JobOutcome:
    """The outcome an event payload reports (an unknown status is an error, never a success)."""
    try:
        return JobOutcome(event.get("status"))
    except ValueError:
        return JobOutcome.ERROR


def task_error(
    outcome: JobOutcome,
    job_id: str | None,
    job: Mapping[str, Any] | None = None,
    *,
    code: str | None = None,
    message: str | None = None,
    timeout_error: type[Exception] = AirflowException,
) -> Exception:
    """The exception a task raises for a finished wait that did not succeed.

    :param job: the final JobsDetail (Failed/Cancel/Pause), when known.
    :param code: ``message``: the error's code and text when there is no JobsDetail (timeout, query error).
    :param timeout_error: the class raised at the max wait (sensors: ``AirflowSensorTimeout``).
    """
    operation = str((job or {}).get("Tag") or SEGMENT_VIDEO_BODY_TAG)
    if outcome is JobOutcome.FAILED:
        state = (job or {}).get("State")
        ci_message = (job or {}).get("Message") or message
        return CIJobFailedError(
            f"CI job {job_id} ended {state}: {ci_message or '(no message)'}",
            code=(job or {}).get("Code") or code or str(state),
            operation=operation,
        )
    if outcome is JobOutcome.PAUSED:
        return CIJobFailedError(f"CI job {job_id} is paused (fail_on_pause=True)", code="Pause", operation=operation)
    if outcome is JobOutcome.TIMEOUT:
        return timeout_error(message or f"CI job {job_id} did not finish before the max wait")
    # The trigger's event keeps only the code: the error table decides the class (a caller's fault stays final).
    error_class = classify(code, None) if code else TencentCloudError
    return error_class(message or f"waiting for CI job {job_id} failed", code=code, operation="DescribeJobs")


def job_error(outcome: JobOutcome, job_id: str, job: Mapping[str, Any] | None) -> Exception:
    """The exception for a finished look at a job (``job`` None: CI does not know it)."""
    if job is None:
        return task_error(JobOutcome.ERROR, job_id, code=NO_SUCH_JOB, message=_missing_message(job_id))
    return task_error(outcome, job_id, job)


def event_error(event: Mapping[str, Any], *, timeout_error: type[Exception] = AirflowException) -> Exception:
    """The exception for a trigger event that is not a success."""
    job = event.get("job")
    if not isinstance(job, Mapping):
        job = None
        if event.get("state"):
            job = {"State": event.get("state"), "Code": event.get("code"), "Message": event.get("message")}
    return task_error(
        event_outcome(event),
        event.get("job_id"),
        job,
        code=event.get("code"),
        message=event.get("message"),
        timeout_error=timeout_error,
    )


__all__ = [
    "MISSING_TOLERANCE",
    "JobOutcome",
    "event_error",
    "event_outcome",
    "event_payload",
    "job_error",
    "job_outcome",
    "missing_payload",
    "task_error",
]
