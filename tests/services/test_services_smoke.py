"""The services harness itself: a deferrable DAG triggered through the REST API completes via the triggerer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services.airflow_services import airflow_services

pytestmark = pytest.mark.services

DAG_FILE = """
import datetime

import pendulum
from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG, task

with DAG("services_smoke", schedule=None, start_date=pendulum.datetime(2024, 1, 1), catchup=False) as dag:
    wait = TimeDeltaSensor(task_id="wait", delta=datetime.timedelta(seconds=2), deferrable=True)

    @task
    def done() -> int:
        return 42

    wait >> done()
"""


def test_deferred_task_completes_through_the_real_triggerer(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "smoke.py").write_text(DAG_FILE)
    with airflow_services(tmp_path / "home", dags) as services:
        services.wait_for_dag("services_smoke")
        run_id = services.trigger_dag("services_smoke")
        assert services.wait_for_run("services_smoke", run_id) == "success"
        assert services.xcom("services_smoke", run_id, "done") == 42
