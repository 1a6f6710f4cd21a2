"""`tencent_ci_video_body` end to end on real Airflow services (API server, scheduler, DAG processor, triggerer).

The run is triggered through the REST API; the deferred submit task is woken by a real CI callback (from the
emulator) to the real triggerer's listener; the triggerer is restarted while the task is deferred; then the submit
task is cleared through the REST API as the UI does, and it succeeds again without a second job.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_provider_tencent_ci.emulator.server import Emulator
from tests.services.airflow_services import airflow_services, free_port

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "tencent_ci_video_body"
SUBMIT = "segment_foreground"


def _created_jobs(emu: Emulator) -> list[dict]:
    return [j for j in emu.jobs if j.get("Tag", "SegmentVideoBody") == "SegmentVideoBody"]


def test_video_body_dag_on_real_services(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags / f"{DAG_ID}.py")
    listener_port = free_port()

    with Emulator(data_dir=tmp_path / "emulator-data") as emu:
        emu.put_object("examplebucket", "videos/dance.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096)
        # Long enough to restart the triggerer while the job runs; short enough for a quick test.
        emu.set_job_timing(2.0, 25.0)
        conn_env, conn_value = emu.airflow_conn_env()
        env = {
            conn_env: conn_value,
            "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST": "127.0.0.1",
            "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT": str(listener_port),
            "AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL": f"http://127.0.0.1:{listener_port}",
            "AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY": "services-test-token-key",
        }
        with airflow_services(tmp_path / "home", dags, env) as services:
            services.wait_for_dag(DAG_ID)
            run_id = services.trigger_dag(DAG_ID)

            services.wait_for_task_state(DAG_ID, run_id, SUBMIT, "deferred", timeout=120)
            assert len(_created_jobs(emu)) >= 1
            services.restart_component("triggerer")  # mid-wait: the trigger is rebuilt from its kwargs

            assert services.wait_for_run(DAG_ID, run_id, timeout=240) == "success", services.home
            jobs = _created_jobs(emu)
            assert len(jobs) == 2  # the foreground job and the mask job, nothing more
            foreground = services.xcom(DAG_ID, run_id, SUBMIT)
            assert foreground["State"] == "Success"

            # CI's callback reached the real triggerer's listener and was accepted.
            delivered = [
                c
                for c in emu.callbacks_sent
                if c.get("job_id") == foreground["JobId"] and f":{listener_port}/" in str(c.get("url", ""))
            ]
            assert delivered, emu.callbacks_sent
            assert any(c.get("status") == 200 for c in delivered), delivered

            # Clear the submit task as the UI does: it reruns and returns the finished job, no second job.
            services.clear_task(DAG_ID, run_id, [SUBMIT], downstream=True)
            services.wait_for(
                lambda: services.dag_run_state(DAG_ID, run_id) in ("queued", "running"), 60, "the cleared run"
            )
            assert services.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
            assert len(_created_jobs(emu)) == 2
            assert services.xcom(DAG_ID, run_id, SUBMIT)["JobId"] == foreground["JobId"]

            # Only secrets are masked: no task, trigger or component log warns about a too-short "secret" (the
            # emulator's connection carries no short string extra; tests/hooks/test_logs.py shows one would warn).
            logs = list(services.home.rglob("*.log"))
            assert any(".trigger." in p.name for p in logs) and any(p.name == "attempt=1.log" for p in logs)
            warned = [p for p in logs if "Skipping masking for a secret" in p.read_text(errors="replace")]
            assert warned == [], warned
