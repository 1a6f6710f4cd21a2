"""jobs/outcome.py: every JobsDetail state, Pause, a missing job, and the exception each outcome raises."""

from __future__ import annotations

import pytest
from airflow.exceptions import AirflowException

from airflow_provider_tencent_ci.exceptions import (
    AirflowFailException,
    CIJobFailedError,
    TencentCloudAuthError,
    TencentCloudError,
    TencentCloudInvalidRequestError,
    TencentCloudNotFoundError,
)
from airflow_provider_tencent_ci.jobs.outcome import (
    MISSING_TOLERANCE,
    JobOutcome,
    event_error,
    event_outcome,
    event_payload,
    job_error,
    job_outcome,
    missing_payload,
)

try:
    from airflow.sdk.exceptions import AirflowSensorTimeout  # type: ignore[attr-defined]
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowSensorTimeout  # type: ignore[no-redef]


@pytest.mark.parametrize(
    ("state", "fail_on_pause", "expected"),
    [
        ("Submitted", False, JobOutcome.WAITING),
        ("Running", True, JobOutcome.WAITING),
        ("Pause", False, JobOutcome.WAITING),
        ("Pause", True, JobOutcome.PAUSED),
        ("Success", False, JobOutcome.SUCCESS),
        ("Failed", False, JobOutcome.FAILED),
        ("Cancel", True, JobOutcome.FAILED),
        ("SomethingNew", False, JobOutcome.WAITING),
    ],
)
def test_state_to_outcome(state: str, fail_on_pause: bool, expected: JobOutcome) -> None:
    assert job_outcome({"JobId": "j", "State": state}, fail_on_pause=fail_on_pause) is expected


def test_missing_is_an_error_only_after_the_tolerance() -> None:
    assert [job_outcome(None, missing=n) for n in range(1, MISSING_TOLERANCE + 1)] == [JobOutcome.WAITING] * (
        MISSING_TOLERANCE - 1
    ) + [JobOutcome.ERROR]
    error = job_error(JobOutcome.ERROR, "j1", None)
    assert isinstance(error, TencentCloudNotFoundError) and error.code == "NoSuchJob"
    assert isinstance(event_error(missing_payload("j1")), TencentCloudNotFoundError)


def test_failed_and_cancel_carry_ci_code_and_message() -> None:
    job = {"JobId": "j1", "State": "Cancel", "Code": "Canceled", "Message": "user cancel", "Tag": "SegmentVideoBody"}
    for error in (job_error(JobOutcome.FAILED, "j1", job), event_error(event_payload(JobOutcome.FAILED, "j1", job))):
        assert isinstance(error, CIJobFailedError)
        assert error.code == "Canceled" and "user cancel" in str(error) and "Cancel" in str(error)


def test_pause_is_one_error_whoever_sees_it() -> None:
    job = {"JobId": "j1", "State": "Pause", "Code": "Success", "Message": ""}
    from_poll = job_error(JobOutcome.PAUSED, "j1", job)
    from_event = event_error(event_payload(JobOutcome.PAUSED, "j1", job))
    for error in (from_poll, from_event):
        assert isinstance(error, CIJobFailedError) and error.code == "Pause" and "fail_on_pause" in str(error)


def test_timeout_class_depends_on_the_task_kind() -> None:
    event = event_payload(JobOutcome.TIMEOUT, "j1", state="Running", message="did not finish")
    operator_error = event_error(event)
    sensor_error = event_error(event, timeout_error=AirflowSensorTimeout)
    assert type(operator_error) is AirflowException and str(operator_error) == "did not finish"
    assert isinstance(sensor_error, AirflowSensorTimeout)


def test_error_event_keeps_the_service_code_and_unknown_status_is_never_success() -> None:
    error = event_error(event_payload(JobOutcome.ERROR, "j1", code="AccessDenied", message="denied"))
    assert isinstance(error, TencentCloudAuthError) and error.code == "AccessDenied"
    # The error table decides: a caller's fault answered while the trigger polled stays final.
    refused = event_error(event_payload(JobOutcome.ERROR, "j1", code="InvalidArgument", message="bad id"))
    assert isinstance(refused, TencentCloudInvalidRequestError) and isinstance(refused, AirflowFailException)
    unknown = event_error(event_payload(JobOutcome.ERROR, "j1", message="no code"))
    assert type(unknown) is TencentCloudError and not isinstance(unknown, AirflowFailException)
    assert event_outcome({"status": "weird"}) is JobOutcome.ERROR
    assert event_outcome(event_payload(JobOutcome.SUCCESS, "j1", {"State": "Success"})) is JobOutcome.SUCCESS
    assert event_payload(JobOutcome.SUCCESS, "j1", {"State": "Success"})["status"] == "success"
