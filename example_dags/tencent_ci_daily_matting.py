"""Daily matting of the images that arrived in COS during the run's data interval (Tencent Cloud Infinite)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

try:  # a day-long data interval per run (Airflow 3's "@daily" is a point in time)
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

from airflow_provider_tencent_ci.operators.ci_image import GoodsMattingOperator, PortraitMattingOperator

# Environment-specific settings are Airflow Variables (or AIRFLOW_VAR_* env vars); the defaults match the
# bundled emulator. The connection `tencentcloud_default` alone decides whether this talks to the emulator or
# to Tencent Cloud.
BUCKET = "{{ var.value.get('tencent_ci_bucket', 'examplebucket-1250000000') }}"
# The day whose arrivals a run processes. For scheduled runs this equals `ds`; it stays right for manual runs
# and `dag.test()` too, whose logical date is the *end* of a cron data interval.
DAY = "{{ data_interval_start | ds }}"

DOC = """
### Daily portrait and goods matting

Every day, the images uploaded under `params.portrait_prefix` and `params.goods_prefix` during the run's data
interval (`data_interval_start <= LastModified < data_interval_end`) are matted (transparent-background PNGs)
and written to `{output_prefix}/portraits/<day>/<stem>.png` and `{output_prefix}/goods/<day>/<stem>.png`.
A final task summarises what was processed, skipped and failed, and logs the prefixes and the time window used.

**What a manual run processes.** A run started with the Trigger button processes the **last complete UTC day
before the moment it was triggered** (Airflow's data interval for a manual run of a daily schedule): triggered
on 2025-03-10 at 14:00 UTC it mattes what arrived from 2025-03-09 00:00 to 2025-03-10 00:00 UTC, not today's
arrivals so far. Objects modified outside that window, or outside the two prefixes, are not touched; if nothing
matched, the `summarize` log says which prefixes and which window were searched.

**Batch operator, not dynamic task mapping.** One task per category lists the prefix once and processes the
matching images on a bounded thread pool (`max_concurrency`, halved automatically when CI throttles). With
dynamic task mapping every image would be its own task instance: a scheduler round-trip, a worker slot and
metadata-DB rows per image, and no shared throttling control - fine for ten images, wasteful for ten thousand.
Per-image visibility is kept in the task's XCom (one document per image: processed/skipped/failed, request id).

**Reruns and catchup pay for nothing twice.** Output keys are a pure function of the source key and the
day, and `if_exists="skip"` checks each output first (HEAD): an output that exists and is not older than its
source is not processed again. Clearing any day in the UI, retrying after a partial failure, or a backfill
(`airflow backfill create --dag-id tencent_ci_daily_matting ...`) only pays for images that have no result yet.
Failed images fail the task *after* every image was tried, so a retry redoes only those.

**Settings.** Bucket: Variable `tencent_ci_bucket` (default `examplebucket-1250000000`, the emulator's
bucket). Region and credentials: the `tencentcloud_default` connection.
"""

with DAG(
    dag_id="tencent_ci_daily_matting",
    description="Matte the portraits and goods that arrived in COS each day",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": True},
    params={
        "portrait_prefix": Param(
            "incoming/portraits/", type="string", minLength=1, description="COS prefix of the portraits to matte"
        ),
        "goods_prefix": Param(
            "incoming/goods/", type="string", minLength=1, description="COS prefix of the product shots to matte"
        ),
        "output_prefix": Param(
            "matted",
            type="string",
            minLength=1,
            pattern=r"^[^/].*[^/]$",
            description="COS folder for the results (no leading or trailing '/'): <output_prefix>/portraits/<day>/",
        ),
        "max_concurrency": Param(
            8, type="integer", minimum=1, maximum=64, description="Images processed in parallel per task (1..64)"
        ),
    },
    doc_md=DOC,
    tags=["tencent-ci", "example", "matting"],
) as dag:
    window = {"modified_after": "{{ data_interval_start }}", "modified_before": "{{ data_interval_end }}"}

    portraits = PortraitMattingOperator(
        task_id="matte_portraits",
        bucket=BUCKET,
        source_prefix="{{ params.portrait_prefix }}",
        **window,
        output_key="{{ params.output_prefix }}/portraits/" + DAY + "/{stem}.png",
        if_exists="skip",
        max_concurrency="{{ params.max_concurrency }}",
        doc_md="Portrait matting (AIPortraitMatting, cloud mode) of the day's portraits.",
    )

    goods = GoodsMattingOperator(
        task_id="matte_goods",
        bucket=BUCKET,
        source_prefix="{{ params.goods_prefix }}",
        **window,
        output_key="{{ params.output_prefix }}/goods/" + DAY + "/{stem}.png",
        center_layout=1,
        if_exists="skip",
        max_concurrency="{{ params.max_concurrency }}",
        doc_md="Goods matting (GoodsMatting, cloud mode, subject centred) of the day's product shots.",
    )

    @task(retries=0)
    def summarize(
        portrait_docs: list[dict[str, Any]] | None, goods_docs: list[dict[str, Any]] | None, **context: Any
    ) -> dict:
        """Counts per category and status, and every output key (XCom holds keys, never image bytes)."""
        start, end, params = context["data_interval_start"], context["data_interval_end"], context["params"]
        window = f"modified from {start.isoformat()} (inclusive) to {end.isoformat()} (exclusive)"
        print(f"This run processes sources {window}")
        summary: dict[str, Any] = {"window": {"start": start.isoformat(), "end": end.isoformat()}}
        categories = (("portraits", portrait_docs, "portrait_prefix"), ("goods", goods_docs, "goods_prefix"))
        for name, docs, prefix_param in categories:
            docs = docs or []
            counts = {s: sum(1 for d in docs if d.get("status") == s) for s in ("processed", "skipped", "failed")}
            outputs = sorted(d["output_key"] for d in docs if d.get("status") != "failed" and d.get("output_key"))
            summary[name] = {**counts, "prefix": params[prefix_param], "outputs": outputs}
            print(
                f"{name} under {params[prefix_param]!r}: {len(docs)} matched, {counts['processed']} processed, "
                f"{counts['skipped']} skipped, {counts['failed']} failed"
            )
        return summary

    summarize(portraits.output, goods.output)
