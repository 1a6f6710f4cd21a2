"""Event-driven: every finished SegmentVideoBody job in a bucket starts a run that publishes its output."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, Param, task

from airflow_provider_tencent_ci.triggers.ci_job import CIJobEventTrigger

# The watcher's trigger is built when the file is parsed, so its bucket cannot come from a template or a
# Variable lookup (that would be a metadata-DB call at parse time): it reads the same setting from the
# environment variable form of the Variable, AIRFLOW_VAR_TENCENT_CI_BUCKET, with the emulator's bucket as default.
WATCHED_BUCKET = os.environ.get("AIRFLOW_VAR_TENCENT_CI_BUCKET", "examplebucket-1250000000")
BUCKET = "{{ var.value.get('tencent_ci_bucket', 'examplebucket-1250000000') }}"

finished_jobs = Asset(
    name="tencent_ci_segment_video_body_finished_jobs",
    uri=f"tencentci://{WATCHED_BUCKET}/jobs/SegmentVideoBody",
    watchers=[
        AssetWatcher(
            name="tencent_ci_svb_job_events",
            trigger=CIJobEventTrigger(
                bucket=WATCHED_BUCKET,
                tag="SegmentVideoBody",
                poll_interval=60,
                # To be woken immediately too, set channel="svb" and point the CI queue's callback URL at
                # callback_listener.callback_url(callback_listener.channel_token("svb")) on the triggerer.
            ),
        )
    ],
)

DOC = """
### Event pipeline: one run per finished CI job

The DAG is scheduled on an **Asset watched by `CIJobEventTrigger`**: the triggerer lists the bucket's
SegmentVideoBody jobs (and, with a callback channel configured, is woken by CI's callbacks), and emits one asset
event per poll cycle or callback batch, carrying every job of that cycle that reached Success/Failed/Cancel -
each job once, whatever restarts happen (the trigger keeps a cursor). Each event schedules a run of this DAG.

1. `resolve_jobs` reads the job ids of **every job of every triggering event** from `triggering_asset_events`
   (one event carries a burst of jobs, and several events can be batched into one run), or from the `job_id`
   param for a manual run or a test, and **confirms each job with CI's query API** (an event payload or a
   callback is never trusted on its own).
2. `publish` (dynamically mapped: one task instance per job) copies a successful job's output to
   `published/<job id>/<file name>` and writes a `manifest.json` beside it; a failed job gets a manifest that
   records CI's error code and message.

Copies and manifests are keyed by job id, so a rerun rewrites the same objects (COS copies are not billed as
CI processing).

Settings: `AIRFLOW_VAR_TENCENT_CI_BUCKET` (watched bucket, read at parse time), Variable `tencent_ci_bucket`
(the bucket the tasks use; keep them equal), connection `tencentcloud_default`.
"""


def job_ids_from_events(triggering_asset_events: Any) -> list[str]:
    """Every job id in every asset event that triggered this run, in order, each once.

    ``extra["payload"]`` is the trigger's event: ``{"jobs": [{"job_id": ...}, ...]}``; an event queued by an
    earlier provider version names one job as ``{"job_id": ...}``.
    """
    ids: dict[str, None] = {}
    for events in (triggering_asset_events or {}).values():
        for event in events:
            extra = getattr(event, "extra", None) or {}
            payload = extra.get("payload", extra)
            if not isinstance(payload, dict):
                continue
            jobs = payload["jobs"] if isinstance(payload.get("jobs"), list) else [payload]
            for job in jobs:
                job_id = job.get("job_id") if isinstance(job, dict) else None
                if job_id:
                    ids.setdefault(str(job_id))
    return list(ids)


with DAG(
    dag_id="tencent_ci_event_pipeline",
    description="Publish the output of every finished SegmentVideoBody job (asset-event driven)",
    schedule=[finished_jobs],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=8,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30)},
    params={
        "job_id": Param(
            None,
            type=["null", "string"],
            description="For manual runs: the CI JobId to post-process (ignored when asset events exist)",
        ),
        "publish_prefix": Param("published", type="string", minLength=1, pattern=r"^[^/].*[^/]$|^[^/]$"),
    },
    doc_md=DOC,
    tags=["tencent-ci", "example", "event-driven", "video"],
) as dag:

    @task
    def resolve_jobs(**context: Any) -> list[dict[str, Any]]:
        """The JobsDetail of every job this run is about, as CI reports it now."""
        from airflow_provider_tencent_ci.hooks.ci import CIHook

        ids = job_ids_from_events(context.get("triggering_asset_events"))
        if not ids and context["params"].get("job_id"):
            ids = [str(context["params"]["job_id"])]
        if not ids:
            raise ValueError("no job to process: no triggering asset event and no job_id param")
        bucket = context["templates_dict"]["bucket"]
        query = CIHook().get_jobs(bucket, ids)
        if query.missing:
            raise LookupError(f"CI does not know job(s) {query.missing} in bucket {bucket}")
        return query.jobs

    @task(map_index_template="{{ job_id }}")
    def publish(job: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Copy one finished job's output under the publish prefix, with a manifest."""
        import json

        from airflow.sdk import get_current_context

        from airflow_provider_tencent_ci.hooks.ci import CIHook

        job_id = str(job["JobId"])
        # Names this mapped instance in the UI (map_index_template).
        get_current_context()["job_id"] = job_id  # type: ignore[typeddict-unknown-key]
        hook = CIHook()
        bucket = context["templates_dict"]["bucket"]
        prefix = f"{context['params']['publish_prefix']}/{job_id}"
        output = (job.get("Operation") or {}).get("Output") or {}
        manifest: dict[str, Any] = {
            "job_id": job_id,
            "state": job.get("State"),
            "code": job.get("Code"),
            "message": job.get("Message"),
            "input": (job.get("Input") or {}).get("Object"),
            "created": job.get("CreationTime"),
            "ended": job.get("EndTime"),
            "source_output": output,
        }
        if job.get("State") == "Success":
            name = str(output["Object"]).rsplit("/", 1)[-1]
            hook.copy_object(output["Bucket"], output["Object"], bucket, f"{prefix}/{name}")
            manifest["published_key"] = f"{prefix}/{name}"
        manifest_key = f"{prefix}/manifest.json"
        hook.put_object(bucket, manifest_key, json.dumps(manifest, indent=2).encode(), "application/json")
        print(f"job {job_id} ({job.get('State')}): manifest at {manifest_key}")
        return {**manifest, "manifest_key": manifest_key}

    jobs = resolve_jobs.override(templates_dict={"bucket": BUCKET})()
    publish.override(templates_dict={"bucket": BUCKET}).expand(job=jobs)
