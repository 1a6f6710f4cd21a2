"""N deferrable SegmentVideoBody tasks in callback mode for the production-shaped deployment tests.

CI calls back ``[tencent_ci] callback_base_url`` (the API server's receiver, publishing to the relay); the fallback
poll interval is left at its default (300 s), so a task finishing within seconds of its job was woken by the
callback. Each run writes under ``out/<params.batch>/``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator

TASKS = 10

with DAG(
    dag_id="production_video_body_callback",
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
            use_callback_listener=True,
        )
