"""SegmentVideoBody (video portrait matting) jobs: a deferrable wait on CI's callback, and a job sensor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_tencent_ci.constants import SVB_COLOR_MAX, SVB_COLOR_MIN
from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator
from airflow_provider_tencent_ci.sensors.ci_job import SegmentVideoBodyJobSensor

BUCKET = "{{ var.value.get('tencent_ci_bucket', 'examplebucket-1250000000') }}"
# Output keys are derived from the input key and the run's date: deterministic, so a cleared task that finds its
# earlier job (the operator marks every job with an idempotency key) does not pay for a second one.
VIDEO_STEM = "{{ params.video_key.rsplit('/', 1)[-1].rsplit('.', 1)[0] }}"
# `ds` is undefined for a manual run without a logical date (Airflow 3's default from the UI and REST API);
# `run_after` always exists.
OUT = "{{ params.output_prefix }}/{{ dag_run.run_after | ds }}/" + VIDEO_STEM

DOC = """
### SegmentVideoBody: two ways to wait for a CI job

* **Branch 1 - deferrable, woken by CI's callback.** `segment_foreground` submits a SegmentVideoBody job
  (Foreground mode: the person over a solid colour) with `deferrable=True, use_callback_listener=True`: the job's
  `CallBack` URL points at the triggerer's callback listener (`[tencent_ci] callback_base_url`, which must be
  reachable by CI), the task frees its worker slot, and the trigger wakes up as soon as CI reports the job
  finished. A callback only wakes the trigger: the state is confirmed with one JobsDetail query (callbacks are
  not signed), and a slow fallback poll covers lost callbacks.
* **Branch 2 - submit, then sense.** `submit_mask_job` submits a Mask-mode job without waiting
  (`wait_for_completion=False`, it returns the submitted JobsDetail); `wait_for_mask_job`
  (`SegmentVideoBodyJobSensor`, deferrable) waits for that job id. This is the pattern for a job submitted by
  another task, another DAG, or outside Airflow.
* **Downstream.** `collect_results` reads both final JobsDetail documents from XCom (state, output object,
  media result) and checks each output object exists in COS.

Retries are safe: a retried or cleared submit task reattaches to its earlier job instead of submitting a new
one (idempotency marker in UserData), and killing the waiting task cancels a job that has not started.

Settings: Variable `tencent_ci_bucket`; the video key and output prefix are params; the region and credentials
come from the `tencentcloud_default` connection.
"""

with DAG(
    dag_id="tencent_ci_video_body",
    description="SegmentVideoBody jobs: deferrable with CI callback, and submit + job sensor",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    params={
        "video_key": Param("videos/dance.mp4", type="string", minLength=1, pattern=r"^[^/].*[^/]$"),
        "output_prefix": Param("segmented-video", type="string", minLength=1, pattern=r"^[^/].*[^/]$|^[^/]$"),
        "background": Param(
            [0, 177, 64],
            type="array",
            items={"type": "integer", "minimum": SVB_COLOR_MIN, "maximum": SVB_COLOR_MAX},
            minItems=3,
            maxItems=3,
            description="Foreground mode background colour (R, G, B)",
        ),
    },
    doc_md=DOC,
    tags=["tencent-ci", "example", "video", "deferrable"],
) as dag:
    foreground = SegmentVideoBodyOperator(
        task_id="segment_foreground",
        bucket=BUCKET,
        input_object="{{ params.video_key }}",
        output_object=OUT + "-foreground.mp4",
        mode="Foreground",
        segment_type="HumanSeg",
        background_red="{{ params.background[0] }}",
        background_green="{{ params.background[1] }}",
        background_blue="{{ params.background[2] }}",
        deferrable=True,
        use_callback_listener=True,
        callback_fallback_poll_interval=120,
        max_wait=timedelta(hours=2).total_seconds(),
    )

    submit_mask = SegmentVideoBodyOperator(
        task_id="submit_mask_job",
        bucket=BUCKET,
        input_object="{{ params.video_key }}",
        output_object=OUT + "-mask.mp4",
        mode="Mask",
        wait_for_completion=False,
    )

    wait_mask = SegmentVideoBodyJobSensor(
        task_id="wait_for_mask_job",
        bucket=BUCKET,
        job_id="{{ ti.xcom_pull(task_ids='submit_mask_job')['JobId'] }}",
        deferrable=True,
        poke_interval=20,
        timeout=timedelta(hours=2).total_seconds(),
    )
    submit_mask >> wait_mask

    @task(retries=1)
    def collect_results(foreground_job: dict[str, Any], mask_job: dict[str, Any]) -> list[dict[str, Any]]:
        """Summarise both finished jobs from their JobsDetail and check each output object exists."""
        from airflow_provider_tencent_ci.hooks.ci import CIHook

        hook = CIHook()
        results = []
        for name, job in (("foreground", foreground_job), ("mask", mask_job)):
            operation = job.get("Operation") or {}
            output = operation.get("Output") or {}
            head = hook.head_object(output["Bucket"], output["Object"])
            row = {
                "branch": name,
                "job_id": job.get("JobId"),
                "state": job.get("State"),
                "input": (job.get("Input") or {}).get("Object"),
                "output_bucket": output.get("Bucket"),
                "output_key": output.get("Object"),
                "output_size": head.get("Content-Length") if head else None,
                "media_result": operation.get("MediaResult"),
            }
            if head is None:
                raise FileNotFoundError(f"job {row['job_id']} succeeded but {output} does not exist")
            print(row)
            results.append(row)
        return results

    collect_results(foreground.output, wait_mask.output)
