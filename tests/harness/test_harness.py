"""The harness itself: a DAG defined in a test runs through dag.test() and pushes XCom."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from tests.conftest import run_dag


def test_dag_defined_in_a_test_runs_green() -> None:
    with DAG("harness_smoke", schedule=None, start_date=pendulum.datetime(2024, 1, 1)) as dag:

        @task
        def double(x: int) -> int:
            return 2 * x

        double(21)

    dr = run_dag(dag)
    assert dr.state == "success"
    ti = dr.get_task_instance("double")
    assert ti.state == "success"
