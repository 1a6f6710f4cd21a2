"""SegmentVideoBodyJobSensor: poke, reschedule and deferrable modes against the emulator via dag.test()."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import CIJobFailedError, ParameterValidationError
from airflow_provider_tencent_ci.sensors.ci_job import SegmentVideoBodyJobSensor
from tests.conftest import run_dag
from tests.operators.image_support import START, state, xcom
from tests.triggers.helpers import BUCKET, put_input, submit, wait_until


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(0.1, 0.3)
    put_input(tencent_conn)
    return tencent_conn


def _dag(dag_id: str, job_id: str, **kw: Any) -> Any:
    from airflow.sdk import DAG

    kw.setdefault("poke_interval", 0.1)
    kw.setdefault("timeout", 60)
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        SegmentVideoBodyJobSensor(task_id="wait", job_id=job_id, bucket="examplebucket", **kw)
    return dag


@pytest.mark.parametrize(
    "mode_kwargs",
    [{"mode": "poke"}, {"mode": "reschedule"}, {"deferrable": True}],
    ids=["poke", "reschedule", "deferrable"],
)
def test_success(
    emu: Any,
    mode_kwargs: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu.set_job_timing(0.3, 0.5)
    job_id = submit()
    name = "_".join(f"{k}{v}" for k, v in mode_kwargs.items())
    capfd.readouterr()
    dr = run_dag(_dag(f"sensor_ok_{name}", job_id, **mode_kwargs), logical_date=START)
    assert state(dr, "wait") == "success"
    # The job link is persisted before the first deferral/reschedule, when Airflow already resolves extra links.
    out, err = capfd.readouterr()
    assert "XCom not found" not in out + err + caplog.text
    detail = xcom(dr, "wait")
    assert detail["JobId"] == job_id and detail["State"] == "Success"


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("outcome", ["Failed", "Cancel"])
def test_failed_or_cancelled_job_fails_the_sensor(emu: Any, deferrable: bool, outcome: str) -> None:
    emu.set_job_timing(0.3, 30)
    job_id = submit()

    def finish() -> None:
        wait_until(lambda: emu.stats.count(operation="DescribeJobs") >= 1, timeout=30)
        emu.force_job_outcome(job_id, outcome, code="E", message="boom")

    thread = threading.Thread(target=finish)
    thread.start()
    dr = run_dag(_dag(f"sensor_fail_{outcome}_{deferrable}", job_id, deferrable=deferrable), logical_date=START)
    thread.join()
    assert state(dr, "wait") == "failed"  # never success for a failed job


@pytest.mark.parametrize("deferrable", [False, True])
def test_soft_fail_skips(emu: Any, deferrable: bool) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.force_job_outcome(job_id, "Failed", code="E", message="boom")
    dr = run_dag(_dag(f"sensor_soft_{deferrable}", job_id, soft_fail=True, deferrable=deferrable), logical_date=START)
    assert state(dr, "wait") == "skipped"


@pytest.mark.parametrize("deferrable", [False, True])
def test_timeout(emu: Any, deferrable: bool) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    dr = run_dag(_dag(f"sensor_timeout_{deferrable}", job_id, timeout=0.5, deferrable=deferrable), logical_date=START)
    assert state(dr, "wait") == "failed"
    dr2 = run_dag(
        _dag(f"sensor_timeout_soft_{deferrable}", job_id, timeout=0.5, soft_fail=True, deferrable=deferrable),
        logical_date=START,
    )
    assert state(dr2, "wait") == "skipped"


def test_poke_carries_ci_message(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.force_job_outcome(job_id, "Failed", code="VideoError", message="bad codec")
    sensor = SegmentVideoBodyJobSensor(task_id="s", job_id=job_id, bucket=BUCKET)
    with pytest.raises(CIJobFailedError, match="bad codec") as info:
        sensor.poke({})  # type: ignore[arg-type]
    assert info.value.code == "VideoError"


def test_pause_is_not_done(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.pause_job(job_id)
    assert SegmentVideoBodyJobSensor(task_id="s", job_id=job_id, bucket=BUCKET).poke({}) is False  # type: ignore[arg-type]
    with pytest.raises(CIJobFailedError):
        SegmentVideoBodyJobSensor(task_id="s2", job_id=job_id, bucket=BUCKET, fail_on_pause=True).poke({})  # type: ignore[arg-type]


def test_bad_arguments() -> None:
    with pytest.raises(ParameterValidationError, match="job_id"):
        SegmentVideoBodyJobSensor(task_id="s", job_id="", bucket=BUCKET)
    SegmentVideoBodyJobSensor(task_id="s", job_id="{{ ti.xcom_pull('svb')['JobId'] }}", bucket=BUCKET)
