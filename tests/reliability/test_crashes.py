"""Crashes: a worker killed right after submit, a triggerer restarted mid-wait, the emulator restarted mid-job.
No job lost, none duplicated."""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.reliability import _jobs, _support
from tests.reliability._support import BUCKET, FULL_BUCKET

REPO = Path(__file__).resolve().parents[2]


def test_worker_killed_after_submit_then_rerun_reattaches(emu: Any, fast_conn: str, figures: Any) -> None:
    from tests.reliability import _crash_dag

    emu.put_object(BUCKET, "in/crash.mp4", _support.mp4_bytes())
    emu.set_job_timing(3600, 0.2)  # stays Submitted: the worker dies while waiting
    logical = "2024-03-01T00:00:00+00:00"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability._crash_dag", fast_conn, logical],
        cwd=str(REPO),
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _jobs.wait_until(lambda: emu.stats.count(operation="CreateJob", ok=True) >= 1, 120, 0.005), (
            "the child never submitted"
        )
        child.send_signal(signal.SIGKILL)  # right after CI accepted the job: before/around the job id is persisted
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert len(emu.jobs) == 1
    first_job = emu.jobs[0]["JobId"]
    emu.set_job_timing(0.1, 0.2)  # let the job finish now
    dr = _crash_dag.sync_and_test(_crash_dag.build(fast_conn), pendulum.parse(logical))
    ti = dr.get_task_instance("svb")
    assert str(ti.state) == "success", ti.state
    result = ti.xcom_pull(task_ids="svb")
    assert result["JobId"] == first_job
    assert emu.stats.count(operation="CreateJob") == 1
    assert len(emu.jobs) == 1
    figures.record(
        "crash: worker SIGKILL after CreateJob, rerun",
        jobs_created=emu.stats.count(operation="CreateJob"),
        jobs_in_emulator=len(emu.jobs),
        rerun_reattached=result["JobId"] == first_job,
        duplicated=len(emu.jobs) - 1,
        lost=0 if str(ti.state) == "success" else 1,
    )


def _rebuild(trigger: Any) -> Any:
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**kwargs)


@pytest.mark.parametrize("kind", ["callback", "poll"])
def test_triggerer_restart_mid_wait(
    emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, kind: str, figures: Any
) -> None:
    """Serialize the trigger, cancel its run() mid-wait (the triggerer goes away), rebuild it from (classpath,
    kwargs) in a new event loop (a new triggerer) and it completes; the job is not cancelled by the restart.
    The job's callback is sent while no trigger runs: it must not be lost either."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger, CIJobTrigger

    emu.put_object(BUCKET, "in/t.mp4", _support.mp4_bytes())
    emu.set_job_timing(3600, 0.1)
    with _jobs.private_listener(monkeypatch):
        nonce = cl.new_nonce()
        callback = cl.callback_url(cl.token_for_nonce(nonce)) if kind == "callback" else None
        job_id = _jobs.submit(fast_conn, emu, "in/t.mp4", "out/t.png", callback)
        common = {
            "job_id": job_id,
            "bucket": FULL_BUCKET,
            "tencentcloud_conn_id": fast_conn,
            "end_time": time.time() + 60,
        }
        trigger: Any = (
            CIJobCallbackTrigger(callback_nonce=nonce, poll_interval=300, **common)
            if kind == "callback"
            else CIJobTrigger(poll_interval=0.2, **common)
        )
        first = asyncio.run(_jobs.first_event(trigger, 1.0))  # wait_for cancels run(): the triggerer stops
        assert first == []
        classpath, kwargs = trigger.serialize()
        assert "secret" not in repr(kwargs).lower() and emu.credential(sts=True).secret_key not in repr(kwargs)
        emu.set_job_timing(0.0, 0.1)  # the job finishes (and calls back) while no triggerer runs
        assert _jobs.wait_until(lambda: emu.jobs[0]["State"] == "Success", 60)
        rebuilt = _rebuild(trigger)
        events = asyncio.run(_jobs.first_event(rebuilt, 30))
    assert len(events) == 1 and events[0].payload["status"] == "success", events
    assert emu.stats.count(operation="CancelJob") == 0
    assert len(emu.jobs) == 1
    figures.record(
        f"crash: triggerer restart mid-wait ({kind} trigger)",
        events=len(events),
        cancel_requests=emu.stats.count(operation="CancelJob"),
        jobs_in_emulator=len(emu.jobs),
        classpath=classpath.rsplit(".", 1)[-1],
    )


def test_emulator_restart_with_data_dir_mid_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    """The service goes away mid-job and comes back with its data: the job continues and completes, the waiting
    trigger rides out the outage (transient network errors) and yields success once; one job, no duplicate."""
    from airflow_provider_tencent_ci.emulator import Emulator
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobTrigger

    port = _jobs.free_port()
    data = tmp_path / "emu-data"
    emu1 = Emulator(port=port, data_dir=data).start()
    try:
        conn = _support.set_emulator_conn(monkeypatch, emu1, "tc_restart", sts=True)
        emu1.put_object(BUCKET, "in/r.mp4", _support.mp4_bytes())
        emu1.set_job_timing(0.3, 1.5)
        job_id = _jobs.submit(conn, emu1, "in/r.mp4", "out/r.png")
        trigger = CIJobTrigger(
            job_id=job_id, bucket=FULL_BUCKET, tencentcloud_conn_id=conn, poll_interval=0.2, end_time=time.time() + 60
        )
        state: dict[str, Any] = {}

        async def scenario() -> list[Any]:
            task = asyncio.create_task(_jobs.first_event(trigger, 45))
            await asyncio.sleep(0.6)  # job Running
            state["before_stop"] = emu1.jobs[0]["State"]
            await asyncio.to_thread(emu1.stop)
            await asyncio.sleep(1.0)  # outage: polls fail with connection refused
            emu2 = Emulator(port=port, data_dir=data)
            state["after_restart_loaded"] = [j["State"] for j in emu2.jobs]
            await asyncio.to_thread(emu2.start)
            emu2.set_job_timing(0.3, 1.5)
            state["emu2"] = emu2
            return await task

        events = asyncio.run(scenario())
    finally:
        emu1.stop()
    emu2 = state["emu2"]
    try:
        jobs = emu2.jobs
        assert state["before_stop"] == "Running"
        assert len(events) == 1 and events[0].payload["status"] == "success", events
        assert len(jobs) == 1 and jobs[0]["JobId"] == job_id and jobs[0]["State"] == "Success"
        assert emu2.get_object(BUCKET, "out/r.png") is not None
        assert emu2.stats.count(operation="CreateJob") == 0
        figures.record(
            "crash: emulator restarted with its data dir mid-job",
            events=len(events),
            jobs_after_restart=len(jobs),
            final_state=jobs[0]["State"],
            duplicated=len(jobs) - 1,
            output_written=True,
        )
    finally:
        emu2.stop()
