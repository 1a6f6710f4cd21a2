"""Benchmark 4: a DAG file that uses every operator, sensor and trigger of airflow_provider_tencent_ci."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher

from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator
from airflow_provider_tencent_ci.operators.ci_image import (
    FaceBeautyOperator,
    GoodsMattingOperator,
    PortraitMattingOperator,
)
from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator
from airflow_provider_tencent_ci.sensors.ci_job import SegmentVideoBodyJobSensor
from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger, CIJobEventTrigger, CIJobTrigger

BUCKET = "examplebucket-1250000000"

# The task triggers are created by the operators when they defer; a DAG file only names them (e.g. for typing).
TASK_TRIGGERS = (CIJobTrigger, CIJobCallbackTrigger)

finished_jobs = Asset(
    "tencent-ci://examplebucket-1250000000/jobs/SegmentVideoBody",
    watchers=[AssetWatcher(name="ci_job_events", trigger=CIJobEventTrigger(bucket=BUCKET))],
)

with DAG(
    dag_id="bench_tencent_ci_all",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    portrait = PortraitMattingOperator(
        task_id="portrait", bucket=BUCKET, source_prefix="in/portraits/", output_key="out/portraits/{stem}.png"
    )
    goods = GoodsMattingOperator(
        task_id="goods",
        bucket=BUCKET,
        source_keys=["in/goods/a.jpg", "in/goods/b.jpg"],
        output_key="out/goods/{stem}.png",
    )
    beauty = FaceBeautyOperator(task_id="beauty", bucket=BUCKET, source_key="in/face.jpg", output_key="out/face.jpg")
    parts = SegmentPortraitPartsOperator(
        task_id="parts",
        bucket=BUCKET,
        source_key="in/face.jpg",
        parts=["Hair", "Face"],
        portrait_output_key="out/parts/portrait.png",
        mask_output_key="out/parts/mask.png",
    )
    video = SegmentVideoBodyOperator(
        task_id="video", bucket=BUCKET, input_object="in/clip.mp4", output_object="out/clip.mp4", deferrable=True
    )
    sensor = SegmentVideoBodyJobSensor(
        task_id="sensor", bucket=BUCKET, job_id="{{ ti.xcom_pull('video')['job_id'] }}", deferrable=True
    )
    portrait >> goods >> beauty >> parts >> video >> sensor

with DAG(
    dag_id="bench_tencent_ci_events",
    schedule=[finished_jobs],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
) as event_dag:
    PortraitMattingOperator(
        task_id="after_job", bucket=BUCKET, source_key="in/portraits/p.jpg", output_key="out/after.png"
    )
