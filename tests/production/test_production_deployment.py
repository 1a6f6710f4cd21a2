"""SegmentVideoBody at production shape: PostgreSQL, CeleryExecutor (Redis broker, two workers), two triggerers.

N deferrable tasks (polling mode) run on the Celery workers and wait in the triggerers; the emulator is the cloud.
Every task succeeds with its own job (exactly N jobs, XCom and the CI job link stored), and when the triggerer
holding the waiting triggers is SIGKILLed, the other triggerer takes them over and every task still succeeds
without a second job.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator.server import Emulator
from tests.production.deployment import TRIGGERERS, ProductionServices, production_deployment, require_packages

pytestmark = pytest.mark.services

DAGS = Path(__file__).with_name("dags")
DAG_ID = "production_video_body"
TASKS = [f"segment_{i}" for i in range(10)]


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(data_dir=tmp_path_factory.mktemp("emulator-data")) as emu:
        emu.put_object("examplebucket", "videos/dance.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096)
        yield emu


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, emulator: Emulator) -> Iterator[ProductionServices]:
    require_packages()
    dags = tmp_path_factory.mktemp("dags")
    shutil.copy(DAGS / f"{DAG_ID}.py", dags / f"{DAG_ID}.py")
    conn_env, conn_value = emulator.airflow_conn_env()
    with production_deployment(tmp_path_factory.mktemp("home"), dags, {conn_env: conn_value}) as services:
        services.wait_for_dag(DAG_ID)
        yield services


def _jobs_of(emu: Emulator, batch: str) -> list[dict[str, Any]]:
    return [
        job
        for job in emu.jobs
        if job["Tag"] == "SegmentVideoBody" and str(job["Operation"]["Output"]["Object"]).startswith(f"out/{batch}/")
    ]


def _assert_every_task_succeeded_with_its_own_job(
    services: ProductionServices, emu: Emulator, run_id: str, batch: str
) -> None:
    states = {task: ti["state"] for task, ti in services.task_instances(DAG_ID, run_id).items()}
    assert states == dict.fromkeys(TASKS, "success"), (states, services.home)
    jobs = _jobs_of(emu, batch)
    assert len(jobs) == len(TASKS), [j["JobId"] for j in jobs]
    assert {j["State"] for j in jobs} == {"Success"}
    job_ids = {j["JobId"] for j in jobs}
    returned = {task: services.xcom(DAG_ID, run_id, task) for task in TASKS}
    assert {r["JobId"] for r in returned.values()} == job_ids
    assert {r["State"] for r in returned.values()} == {"Success"}
    for task, result in returned.items():
        link = services.xcom(DAG_ID, run_id, task, key="ci_job")
        assert link["job_id"] == result["JobId"], (task, link)


def test_every_deferred_task_succeeds_on_celery_and_postgres(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    emulator.set_job_timing(0.5, 2.0)
    run_id = deployment.trigger_dag(DAG_ID, {"batch": "steady"})
    assert deployment.wait_for_run(DAG_ID, run_id, timeout=150) == "success", deployment.home
    _assert_every_task_succeeded_with_its_own_job(deployment, emulator, run_id, "steady")
    # The tasks really ran on the Celery workers, recorded in the PostgreSQL metadata DB.
    hosts = {h for (h,) in deployment.query("SELECT DISTINCT hostname FROM task_instance WHERE run_id = %s", run_id)}
    assert hosts and hosts <= {"celery-worker-1", "celery-worker-2"}, hosts


def test_a_killed_triggerer_hands_its_triggers_to_the_other(deployment: ProductionServices, emulator: Emulator) -> None:
    emulator.set_job_timing(0.5, 3600.0)  # jobs run until the test lets them finish
    run_id = deployment.trigger_dag(DAG_ID, {"batch": "failover"})

    def all_deferred_and_running() -> dict[str, int] | None:
        placement = deployment.triggers_by_triggerer(DAG_ID, run_id)
        running = {host: n for host, n in placement.items() if host in TRIGGERERS}
        return running if sum(running.values()) == len(TASKS) else None

    placement = deployment.wait_for(all_deferred_and_running, 150, "every task deferred to a running triggerer")
    victim = max(placement, key=lambda host: placement[host])
    survivor = next(t for t in TRIGGERERS if t != victim)
    deployment.kill(victim)

    deployment.wait_for(
        lambda: deployment.triggers_by_triggerer(DAG_ID, run_id) == {survivor: len(TASKS)},
        90,
        f"{survivor} to take over the {placement[victim]} trigger(s) of the killed {victim}",
    )
    emulator.set_job_timing(0.0, 0.5)  # every job finishes now
    assert deployment.wait_for_run(DAG_ID, run_id, timeout=120) == "success", deployment.home
    _assert_every_task_succeeded_with_its_own_job(deployment, emulator, run_id, "failover")
