"""N deferrable SegmentVideoBody tasks for the production-shaped deployment tests, in two DAGs.

- ``production_video_body``: polling mode (a short poll interval).
- ``production_video_body_callback``: callback mode. CI calls back ``[tencent_ci] callback_base_url`` (the API
  server's receiver, publishing to the relay); the fallback poll interval is left at its default (300 s), so a task
  finishing within seconds of its job was woken by the callback.

Each run writes under ``out/<params.batch>/`` so a test counts exactly the jobs of its own run in the emulator.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator

TASKS = 10


def video_body_dag(dag_id: str, **wait: Any) -> DAG:
    """``TASKS`` SegmentVideoBody tasks; ``wait`` says how each one waits for its job."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        params={"batch": Param("default", type="string", pattern=r"^[a-z0-9-]+$")},
        default_args={"retries": 0},
    ) as dag:
        for index in range(TASKS):
            SegmentVideoBodyOperator(
                task_id=f"segment_{index}",
                bucket="examplebucket",
                input_object="videos/dance.mp4",
                output_object=f"out/{{{{ params.batch }}}}/clip-{index}.mp4",
                mode="Mask",
                deferrable=True,
                **wait,
            )
    return dag


polling_dag = video_body_dag("production_video_body", poll_interval=2)
callback_dag = video_body_dag("production_video_body_callback", use_callback_listener=True)
