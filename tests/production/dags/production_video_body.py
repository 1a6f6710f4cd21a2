"""N deferrable SegmentVideoBody tasks (polling mode) for the production-shaped deployment tests.

Each run writes under ``out/<params.batch>/`` so a test counts exactly the jobs of its own run in the emulator.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator

TASKS = 10

with DAG(
    dag_id="production_video_body",
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
            poll_interval=2,
        )
