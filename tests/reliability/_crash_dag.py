"""The DAG of the worker-crash scenario, and a runner usable in a child process:

    python -m tests.reliability._crash_dag CONN_ID LOGICAL_DATE_ISO

The child inherits the parent's AIRFLOW_HOME / metadata DB / connection environment (it must not import
tests.conftest, which would make a new Airflow home)."""

from __future__ import annotations

import sys
from typing import Any

import pendulum

DAG_ID = "rel_crash_worker"


def build(conn_id: str) -> Any:
    from airflow.sdk import DAG

    from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator

    with DAG(DAG_ID, schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        SegmentVideoBodyOperator(
            task_id="svb",
            bucket="examplebucket",
            input_object="in/crash.mp4",
            output_object="out/crash.png",
            deferrable=False,
            poll_interval=0.2,
            tencentcloud_conn_id=conn_id,
        )
    return dag


def sync_and_test(dag: Any, logical_date: Any) -> Any:
    from tests.airflow_compat import run_dag

    # run_after = logical_date: the run id (manual__<run_after>) is the same in the killed run and the rerun, as
    # for a retry or a clear of the same task instance.
    return run_dag(dag, "/nonexistent", logical_date=logical_date, run_after=logical_date)


if __name__ == "__main__":
    sync_and_test(build(sys.argv[1]), pendulum.parse(sys.argv[2]))
