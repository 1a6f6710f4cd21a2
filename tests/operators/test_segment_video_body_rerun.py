"""Rerun safety: a task killed right after CreateJob (before anything is persisted) reattaches on rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from airflow_provider_tencent_ci.operators.segment_video_body import RerunLookupError
from tests.hooks.conftest import FAST_RETRY, set_conn
from tests.operators.test_segment_video_body import FakeTI, _op, ctx
from tests.triggers.helpers import INPUT, put_input, wait_until

_CHILD = textwrap.dedent(
    """
    from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator

    class TI:
        dag_id, task_id, run_id, map_index = "d", "svb", "manual__1", -1
        def xcom_push(self, key, value):
            pass

    op = SegmentVideoBodyOperator(task_id="svb", bucket="examplebucket", input_object="input/test.mp4",
                                  output_object="out/person.mp4", poll_interval=0.1, deferrable=False)
    op.execute({"ti": TI()})
    """
)


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(30, 30)
    put_input(tencent_conn)
    return tencent_conn


def _kill_after_create(emu: Any) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while emu.stats.count(operation="CreateJob") < 1:
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else "child exited"
            assert time.monotonic() < deadline, "the child never submitted"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)  # the worker dies right after CreateJob
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL


def test_rerun_after_crash_reattaches_to_the_one_job(emu: Any) -> None:
    _kill_after_create(emu)
    assert len(emu.jobs) == 1
    first = emu.jobs[0]["JobId"]

    # The retry (same dag/task/run/map index) finds the job through its UserData marker: no second CreateJob.
    job = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert job["JobId"] == first
    assert emu.stats.count(operation="CreateJob") == 1

    # Once it succeeded (output present), a cleared task returns it instead of submitting again.
    emu.force_job_outcome(first, "Success")
    done = _op(deferrable=False).execute(ctx(FakeTI()))
    assert done["JobId"] == first and done["State"] == "Success"
    assert len(emu.jobs) == 1 and emu.stats.count(operation="CreateJob") == 1


def test_rerun_after_failed_job_submits_anew(emu: Any) -> None:
    first = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    emu.force_job_outcome(first["JobId"], "Failed", code="X", message="y")
    second = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert second["JobId"] != first["JobId"]
    assert emu.stats.count(operation="CreateJob") == 2


def test_success_without_output_submits_anew(emu: Any) -> None:
    first = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    emu.force_job_outcome(first["JobId"], "Success")
    wait_until(lambda: emu.get_object("examplebucket", "out/person.mp4") is not None)
    emu.store.delete(emu.bucket_name("examplebucket"), "out/person.mp4")
    again = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert again["JobId"] != first["JobId"]


def test_other_runs_do_not_reattach(emu: Any) -> None:
    one = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI(run_id="r1")))
    two = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI(run_id="r2")))
    assert one["JobId"] != two["JobId"]
    assert emu.stats.count(operation="CreateJob") == 2


def test_rerun_lookup_lists_the_ai_queue_for_the_same_input(emu: Any) -> None:
    first = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    again = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert again["JobId"] == first["JobId"]
    lookups = emu.stats.queries(operation="ListJobs")
    assert len(lookups) == 2  # one lookup per try, each one page
    for query in lookups:
        assert query["queueType"] == "AIProcess"
        assert query["inputObject"] == INPUT  # the documented exact-match filter (cn 460/84766)
        assert query["tag"] == "SegmentVideoBody"
    assert emu.stats.count(operation="CreateJob") == 1


def test_failed_rerun_lookup_submits_nothing_and_says_why(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {**emu.connection_extras(), **FAST_RETRY}
    set_conn(monkeypatch, "tc_fast", emu.credential().secret_id, emu.credential().secret_key, extras)
    emu.set_faults({"seed": 1, "per_operation": {"ListJobs": {"error_rate": 1.0, "errors": ["5xx"]}}})
    try:
        with pytest.raises(RerunLookupError) as info:
            _op(deferrable=False, tencentcloud_conn_id="tc_fast").execute(ctx(FakeTI()))
    finally:
        emu.set_faults(None)
    text = str(info.value)
    assert "InternalError" in text and "No job was submitted" in text and "reattach_lookback=0" in text
    assert info.value.operation == "ListJobs" and info.value.retryable  # a later try looks again
    assert emu.stats.count(operation="ListJobs") == FAST_RETRY["max_attempts"]  # transient errors were retried
    assert emu.stats.count(operation="CreateJob") == 0 and emu.jobs == []


def test_failed_output_check_of_a_succeeded_job_submits_nothing(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {**emu.connection_extras(), **FAST_RETRY}
    set_conn(monkeypatch, "tc_fast", emu.credential().secret_id, emu.credential().secret_key, extras)
    first = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    emu.force_job_outcome(first["JobId"], "Success")
    wait_until(lambda: emu.get_object("examplebucket", "out/person.mp4") is not None)
    emu.set_faults({"seed": 1, "per_operation": {"HeadObject": {"error_rate": 1.0, "errors": ["5xx"]}}})
    try:
        with pytest.raises(RerunLookupError, match=r"HeadObject failed.*No job was submitted"):
            _op(deferrable=False, tencentcloud_conn_id="tc_fast").execute(ctx(FakeTI()))
    finally:
        emu.set_faults(None)
    assert emu.stats.count(operation="HeadObject") == FAST_RETRY["max_attempts"]
    assert emu.stats.count(operation="CreateJob") == 1  # "could not check" never means "the output is gone"


def test_a_leading_slash_key_is_looked_up_without_the_input_filter(emu: Any) -> None:
    first = _op(input_object=f"/{INPUT}", deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    again = _op(input_object=f"/{INPUT}", deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert again["JobId"] == first["JobId"] and emu.stats.count(operation="CreateJob") == 1
    lookups = emu.stats.queries(operation="ListJobs")
    assert len(lookups) == 2 and all("inputObject" not in q and q["queueType"] == "AIProcess" for q in lookups)
