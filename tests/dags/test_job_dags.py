"""The SegmentVideoBody example DAGs run green against the emulator: callback wait, sensor, event pipeline."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from demo import scenario
from tests.conftest import run_dag
from tests.dags._support import example_dag, task_states, xcom

BUCKET = scenario.DEFAULT_BUCKET


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def callback_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The triggerer's CI callback listener on a free loopback port (dag.test() runs triggers in-process)."""
    from airflow_provider_tencent_ci.triggers import callback_listener as listener

    port = _free_port()
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(port))
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", f"http://127.0.0.1:{port}")
    listener.reset_listener()
    yield f"http://127.0.0.1:{port}"
    listener.reset_listener()


def _hook() -> Any:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    return CIHook()


def _run_video_dag(emulator: Any) -> Any:
    scenario.seed_video(_hook(), BUCKET)
    dag = example_dag("tencent_ci_video_body")
    # The example polls every 20 s (sensible against CI); the emulator's jobs take under a second.
    dag.get_task("wait_for_mask_job").poke_interval = 0.3
    return run_dag(dag)


def test_video_body_callback_branch_sensor_branch_and_results(tencent_conn: Any, callback_listener: str) -> None:
    tencent_conn.set_job_timing(0.5, 1.0)  # long enough that the sensor's first poke finds it running
    before = scenario.paid_counts(tencent_conn)
    dr = _run_video_dag(tencent_conn)
    assert dr.state == "success", task_states(dr)
    # Exactly two jobs were paid for: one per branch (no resubmission while waiting).
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {"CreateJob": 2}

    results = {r["branch"]: r for r in xcom(dr, "collect_results")}
    assert set(results) == {"foreground", "mask"}
    for branch, row in results.items():
        assert row["state"] == "Success"
        assert row["input"] == scenario.VIDEO_KEY
        assert row["output_key"].endswith(f"dance-{branch}.mp4")
        assert _hook().head_object(row["output_bucket"], row["output_key"]) is not None

    # The deferrable branch asked CI for a callback to the listener, and the listener accepted it.
    fg_job = results["foreground"]["job_id"]
    sent = [c for c in tencent_conn.callbacks_sent if c.get("job_id") == fg_job]
    assert sent and all(str(c["url"]).startswith(callback_listener + "/") for c in sent), sent
    assert any(c.get("status") in (200, 202, 204) for c in sent), sent
    # The sensor's job was submitted without a callback.
    assert not [c for c in tencent_conn.callbacks_sent if c.get("job_id") == results["mask"]["job_id"] and c["url"]]


def test_event_pipeline_publishes_a_job_from_the_param(tencent_conn: Any, callback_listener: str) -> None:
    tencent_conn.set_job_timing(0.0, 0.1)
    dr = _run_video_dag(tencent_conn)
    assert dr.state == "success", task_states(dr)
    job_ids = [r["job_id"] for r in xcom(dr, "collect_results")]

    dag = example_dag("tencent_ci_event_pipeline")
    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, run_conf={"job_id": job_ids[0]})
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {}  # copies and manifests only
    hook = _hook()
    manifest = json.loads(hook.get_object_bytes(BUCKET, f"published/{job_ids[0]}/manifest.json"))
    assert manifest["job_id"] == job_ids[0] and manifest["state"] == "Success"
    assert hook.head_object(BUCKET, manifest["published_key"]) is not None
    assert (
        manifest["published_key"] == f"published/{job_ids[0]}/" + manifest["source_output"]["Object"].rsplit("/", 1)[-1]
    )


def test_event_pipeline_reports_a_failed_job_without_publishing(tencent_conn: Any) -> None:
    tencent_conn.set_job_timing(0.0, 0.1)
    hook = _hook()
    scenario.seed_video(hook, BUCKET)
    job = hook.submit_job(
        BUCKET,
        {
            "Tag": "SegmentVideoBody",
            "Input": {"Object": scenario.VIDEO_KEY},
            "Operation": {
                "SegmentVideoBody": {"Mode": "Mask"},
                "Output": {"Region": "ap-guangzhou", "Bucket": BUCKET, "Object": "out/failed.mp4"},
            },
        },
    )
    tencent_conn.force_job_outcome(job["JobId"], "Failed", code="InternalError", message="decoder crashed")
    dr = run_dag(example_dag("tencent_ci_event_pipeline"), run_conf={"job_id": job["JobId"]})
    assert dr.state == "success", task_states(dr)
    manifest = json.loads(hook.get_object_bytes(BUCKET, f"published/{job['JobId']}/manifest.json"))
    assert (manifest["state"], manifest["code"]) == ("Failed", "InternalError")
    assert "published_key" not in manifest


def test_event_pipeline_reads_the_job_from_the_watchers_event(tencent_conn: Any) -> None:
    """The payload the DAG's own watcher trigger emits is what the DAG extracts its job id from."""

    tencent_conn.set_job_timing(0.0, 0.1)
    hook = _hook()
    scenario.seed_video(hook, BUCKET)
    job = hook.submit_job(
        BUCKET,
        {
            "Tag": "SegmentVideoBody",
            "Input": {"Object": scenario.VIDEO_KEY},
            "Operation": {
                "SegmentVideoBody": {"Mode": "Mask"},
                "Output": {"Region": "ap-guangzhou", "Bucket": BUCKET, "Object": "out/evented.mp4"},
            },
        },
    )
    tencent_conn.force_job_outcome(job["JobId"], "Success")

    dag = example_dag("tencent_ci_event_pipeline")
    module = _dag_module(dag)
    asset = module.finished_jobs
    assert [a.name for a in dag.timetable.asset_condition.objects] == [asset.name]
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath.endswith("CIJobEventTrigger")
    assert kwargs["bucket"] == BUCKET and "secret" not in json.dumps(kwargs).lower()
    trigger = type(watcher.trigger)(**{**kwargs, "poll_interval": 0.2})

    async def first_event() -> Any:
        agen = trigger.run()
        try:
            return await asyncio.wait_for(agen.__anext__(), timeout=20)
        finally:
            await agen.aclose()

    event = asyncio.run(first_event())
    assert [j["job_id"] for j in event.payload["jobs"]] == [job["JobId"]]

    class _AssetEvent:  # the shape Airflow hands a task: AssetEvent(extra={"from_trigger": True, "payload": ...})
        def __init__(self, payload: dict[str, Any]) -> None:
            self.extra = {"from_trigger": True, "payload": payload}

    extract = module.job_ids_from_events
    # Keyed by the asset's name: Airflow 3.1's Asset with watchers is not hashable, and only the values matter.
    assert extract({asset.name: [_AssetEvent(event.payload)]}) == [job["JobId"]]
    assert extract({}) == []
    # Every job of every triggering event, each once; an event queued by the earlier one-job payload still counts.
    burst = {"jobs": [{"job_id": "a1"}, {"job_id": "a2"}, {"job_id": "a3"}]}
    later = {"jobs": [{"job_id": "a3"}, {"job_id": "a4"}]}
    legacy = {"job_id": "a5"}
    assert extract({asset.name: [_AssetEvent(burst), _AssetEvent(later), _AssetEvent(legacy)]}) == [
        "a1",
        "a2",
        "a3",
        "a4",
        "a5",
    ]


def _dag_module(dag: Any) -> Any:
    import sys

    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == dag.fileloc:
            return module
    raise LookupError(dag.fileloc)
