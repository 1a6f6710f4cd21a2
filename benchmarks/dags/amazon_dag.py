"""Benchmark 4 peer: a DAG file that uses the Amazon provider's S3 and Glue operators, sensors and triggers."""

from __future__ import annotations

import pendulum
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.s3 import (
    S3CopyObjectOperator,
    S3CreateObjectOperator,
    S3DeleteObjectsOperator,
    S3ListOperator,
)
from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
from airflow.providers.amazon.aws.triggers.s3 import S3KeyTrigger
from airflow.sdk import DAG

BUCKET = "example-bucket"

# The triggers are created by the operators when they defer; a DAG file only names them (e.g. for typing).
TASK_TRIGGERS = (GlueJobCompleteTrigger, S3KeyTrigger)

with DAG(
    dag_id="bench_amazon_s3_glue",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
) as dag:
    create = S3CreateObjectOperator(task_id="create", s3_bucket=BUCKET, s3_key="in/a.txt", data="x")
    copy = S3CopyObjectOperator(
        task_id="copy",
        source_bucket_name=BUCKET,
        source_bucket_key="in/a.txt",
        dest_bucket_name=BUCKET,
        dest_bucket_key="out/a.txt",
    )
    listing = S3ListOperator(task_id="list", bucket=BUCKET, prefix="out/")
    key = S3KeySensor(task_id="key", bucket_name=BUCKET, bucket_key="out/a.txt", deferrable=True)
    glue = GlueJobOperator(
        task_id="glue", job_name="bench-job", script_location=f"s3://{BUCKET}/job.py", deferrable=True
    )
    glue_wait = GlueJobSensor(task_id="glue_wait", job_name="bench-job", run_id="{{ ti.xcom_pull('glue') }}")
    delete = S3DeleteObjectsOperator(task_id="delete", bucket=BUCKET, keys=["in/a.txt", "out/a.txt"])
    create >> copy >> listing >> key >> glue >> glue_wait >> delete
