"""Secrets: every example DAG run end to end against the emulator with the STS credential (so there is a token to
look for) and with a failing call in each. The SecretKey and the STS token must appear nowhere: not in task or
trigger logs (process output and log files), XCom, rendered templates (rendered_task_instance_fields), task
instance rows (next_kwargs), serialized DAGs (the asset watcher's trigger), or the trigger table's kwargs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator import FaultConfig, OperationFaults
from tests.conftest import _HOME, run_dag
from tests.reliability import _jobs, _support

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
DAG_TABLES = (
    "xcom",
    "rendered_task_instance_fields",
    "task_instance",
    "task_instance_history",
    "dag_run",
    "serialized_dag",
    "log",
)


def _fresh_dags() -> dict[str, Any]:
    """The example DAGs from a private DagBag (we set retries to 0; the shared bag of tests/dags stays intact)."""
    from tests.airflow_compat import dagbag_class

    bag = dagbag_class()(dag_folder=str(EXAMPLES))
    assert not bag.import_errors, bag.import_errors
    for dag in bag.dags.values():
        for t in dag.tasks:
            t.retries = 0
    return dict(bag.dags)


def _rows(session: Any, table: str, where: str = "", params: dict[str, Any] | None = None) -> list[str]:
    from sqlalchemy import inspect, text

    inspector = inspect(session.get_bind())
    if table not in inspector.get_table_names():
        return []
    if "dag_id" in where and "dag_id" not in {c["name"] for c in inspector.get_columns(table)}:
        return []
    return [repr(tuple(r)) for r in session.execute(text(f"SELECT * FROM {table} {where}"), params or {})]


def _failing_jobs(emu: Any, stop: threading.Event) -> None:
    """Fail every job shortly after it is created (CI reports Failed, InternalError)."""
    done: set[str] = set()
    while not stop.wait(0.02):
        for job in emu.jobs:
            if job["JobId"] not in done and job["State"] in ("Submitted", "Running"):
                done.add(job["JobId"])
                emu.force_job_outcome(job["JobId"], "Failed", code="InternalError", message="emulated decoder crash")


def test_no_secret_anywhere_after_failing_example_runs(
    emu: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path, figures: Any
) -> None:
    from airflow.settings import Session
    from sqlalchemy import text

    from demo import scenario

    cred = emu.credential(sts=True)
    secrets = {"SecretKey": cred.secret_key, "STS token": cred.token}
    # The default connection every example uses: the STS credential, fast retries.
    _support.set_conn(
        monkeypatch,
        "tencentcloud_default",
        cred.secret_id,
        cred.secret_key,
        {**emu.connection_extras(sts=True), **_support.FAST_RETRY, "max_attempts": 2},
    )
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook()
    dags = _fresh_dags()
    with Session() as session:
        trigger_before = session.execute(text("SELECT COALESCE(MAX(id), 0) FROM trigger")).scalar()
    states: dict[str, dict[str, str]] = {}

    # 1. Daily matting: every ImageProcess answers 500.
    seeded = scenario.seed_daily_inputs(hook, scenario.DEFAULT_BUCKET, portraits=2, goods=1)
    emu.set_faults(
        FaultConfig(seed=1, per_operation={"ImageProcess": OperationFaults(error_rate=1.0, errors=("5xx",))})
    )
    dr = run_dag(dags["tencent_ci_daily_matting"], logical_date=scenario.daily_logical_date(seeded))
    states["daily_matting"] = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    emu.set_faults(None)

    # 2. Portrait studio: upload+beauty and matting work, BDA segmentation is throttled on every call.
    paths_dir = tmp_path / "portraits"
    scenario.write_studio_inputs(paths_dir, count=2)
    emu.set_faults(
        FaultConfig(
            seed=2,
            per_operation={"SegmentCustomizedPortraitPic": OperationFaults(error_rate=1.0, errors=("throttle",))},
        )
    )
    dr = run_dag(
        dags["tencent_ci_portrait_studio"],
        run_conf={"local_dir": str(paths_dir), "strength": 0.8, "parts": ["Head", "Hair"], "padding": 10},
    )
    states["portrait_studio"] = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    emu.set_faults(None)

    # 3. Video body: both jobs end Failed (callback trigger branch, and the deferrable sensor branch).
    scenario.seed_video(hook, scenario.DEFAULT_BUCKET)
    emu.set_job_timing(1.0, 1.0)
    video = dags["tencent_ci_video_body"]
    video.get_task("wait_for_mask_job").poke_interval = 0.3
    stop = threading.Event()
    killer = threading.Thread(target=_failing_jobs, args=(emu, stop), daemon=True)
    killer.start()
    try:
        with _jobs.private_listener(monkeypatch):
            dr = run_dag(video)
    finally:
        stop.set()
        killer.join(5)
    states["video_body"] = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    failed_job = emu.jobs[0]["JobId"]

    # 4. Event pipeline, for that failed job: publishing the manifest fails (PutObject 500).
    emu.set_faults(FaultConfig(seed=3, per_operation={"PutObject": OperationFaults(error_rate=1.0, errors=("5xx",))}))
    dr = run_dag(dags["tencent_ci_event_pipeline"], run_conf={"job_id": failed_job})
    states["event_pipeline"] = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    emu.set_faults(None)

    # Every DAG really had a failure (and real work before it).
    assert "failed" in states["daily_matting"].values(), states
    assert states["portrait_studio"].get("segment_parts") == "failed", states
    assert states["portrait_studio"].get("portrait_matting") == "success", states
    assert states["video_body"].get("segment_foreground") == "failed", states
    assert states["video_body"].get("wait_for_mask_job") == "failed", states
    assert "failed" in states["event_pipeline"].values(), states

    # Where a secret could end up.
    out, err = capfd.readouterr()
    places: dict[str, str] = {"process output (task and trigger logs)": out + err}
    log_dir = _HOME / "logs"
    places["log files"] = (
        "\n".join(p.read_text(errors="replace") for p in log_dir.rglob("*") if p.is_file()) if log_dir.exists() else ""
    )
    dag_ids = list(dags)
    marks = ", ".join(f":d{n}" for n in range(len(dag_ids)))
    params = {f"d{n}": d for n, d in enumerate(dag_ids)}
    with Session() as session:
        for table in DAG_TABLES:
            places[f"table {table}"] = "\n".join(_rows(session, table, f"WHERE dag_id IN ({marks})", params))
        trigger_rows = _rows(session, "trigger", "WHERE id > :before", {"before": trigger_before})
        places["table trigger (raw)"] = "\n".join(trigger_rows)
        from airflow.models.trigger import Trigger

        new_triggers = session.query(Trigger).filter(Trigger.id > trigger_before).all()
        places["table trigger (decrypted kwargs)"] = "\n".join(repr(t.kwargs) for t in new_triggers)
    leaks = [
        f"{name} in {place}"
        for place, blob in places.items()
        for name, value in secrets.items()
        if value and value in blob
    ]
    sizes = {place: len(blob) for place, blob in places.items()}
    assert sizes["process output (task and trigger logs)"] > 1000, "nothing captured: the check would be void"
    assert sizes["table xcom"] > 0 and sizes["table rendered_task_instance_fields"] > 0, sizes
    assert emu.stats.count(ok=True) > 10
    # Not a Tencent credential, but the bearer secret of a callback URL: report where it shows (not asserted).
    cb_tokens = {str(c["url"]).rsplit("/", 1)[-1] for c in emu.callbacks_sent if c.get("url")}
    token_places = sorted({place for place, blob in places.items() for t in cb_tokens if t and t in blob})
    figures.record(
        "secrets: 4 example DAGs with failing calls, STS credential",
        dags=len(states),
        failed_tasks=sum(1 for s in states.values() for v in s.values() if v == "failed"),
        places_searched=len(places),
        bytes_searched=sum(sizes.values()),
        triggers_in_table=len(new_triggers),
        leaks=len(leaks),
        callback_url_token_seen_in=token_places,
    )
    assert not leaks, leaks
