"""SegmentVideoBody at production shape: PostgreSQL, CeleryExecutor (Redis broker, two workers), two triggerers.

N deferrable tasks (polling mode) run on the Celery workers and wait in the triggerers; the emulator is the cloud.
Every task succeeds with its own job (exactly N jobs, XCom and the CI job link stored), and when the triggerer
holding the waiting triggers is SIGKILLed, the other triggerer takes them over and every task still succeeds
without a second job.

The API server carries the provider's callback receiver plugin, publishing to the callback relay. The relay has
its own redis-server here (production may share the broker's) so that stopping it does not stop Celery.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_tencent_ci.emulator.server import Emulator
from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callback_listener import MAX_BODY_BYTES, new_nonce, token_for_nonce
from tests.production.deployment import (
    TRIGGERERS,
    ProductionServices,
    RedisServer,
    production_deployment,
    require_packages,
)

pytestmark = pytest.mark.services

DAGS = Path(__file__).with_name("dags")
DAG_ID = "production_video_body"
TASKS = [f"segment_{i}" for i in range(10)]
# Airflow < 3.3 fails a task resumed before the scheduler saw its deferral exit (see _finish_jobs).
SCHEDULER_RACES_FAST_RESUMES = Version(airflow_version) < Version("3.3")
TOKEN_KEY = "production-test-callback-token-key"
CALLBACK = b'{"EventName":"TaskFinish","JobsDetail":{"JobId":"a0123","State":"Success"}}'


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(data_dir=tmp_path_factory.mktemp("emulator-data")) as emu:
        emu.put_object("examplebucket", "videos/dance.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096)
        yield emu


@pytest.fixture(scope="module")
def relay_redis() -> Iterator[RedisServer]:
    require_packages()
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, emulator: Emulator, relay_redis: RedisServer
) -> Iterator[ProductionServices]:
    dags = tmp_path_factory.mktemp("dags")
    shutil.copy(DAGS / f"{DAG_ID}.py", dags / f"{DAG_ID}.py")
    conn_env, conn_value = emulator.airflow_conn_env()
    relay_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": relay_redis.port, "extra": {"db": 0}}
    env = {
        conn_env: conn_value,
        "AIRFLOW_CONN_TENCENT_CI_RELAY": json.dumps(relay_conn),
        "AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID": "tencent_ci_relay",
        "AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY": TOKEN_KEY,
    }
    # This process makes the tokens the receiver checks: the same key.
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"] = TOKEN_KEY
    try:
        with production_deployment(tmp_path_factory.mktemp("home"), dags, env) as services:
            services.wait_for_dag(DAG_ID)
            yield services
    finally:
        del os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"]


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
    # The link as the UI shows it, through the REST API.
    run = quote(run_id, safe="")
    links = services._request("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{TASKS[0]}/links")
    assert returned[TASKS[0]]["JobId"] in str(links["extra_links"].get("CI Job")), links


def _wait_until_all_deferred(deployment: ProductionServices, run_id: str) -> dict[str, int]:
    """Every task of the run deferred, and its trigger running on a live triggerer; returns the placement."""

    def placement() -> dict[str, int] | None:
        running = {h: n for h, n in deployment.triggers_by_triggerer(DAG_ID, run_id).items() if h in TRIGGERERS}
        return running if sum(running.values()) == len(TASKS) else None

    return dict(deployment.wait_for(placement, 150, "every task deferred to a running triggerer"))


def _finish_jobs(deployment: ProductionServices, emulator: Emulator, run_id: str) -> None:
    """Let every job of the run finish now.

    Airflow < 3.3 fails a task whose trigger fires before the scheduler has processed the Celery "success" of the
    worker's exit after ``defer()`` (3.3.2's ``scheduler_job_runner`` checks for this "resume-after-defer" case;
    3.1.8's does not). That is a core race, not the provider's: on those versions, wait for the scheduler first.
    """
    if SCHEDULER_RACES_FAST_RESUMES:
        deployment.wait_for(
            lambda: deployment.deferral_exits_processed(DAG_ID, run_id) >= set(TASKS),
            60,
            "the scheduler to process every deferral exit (Airflow < 3.3)",
        )
    emulator.set_job_timing(0.0, 0.5)


def test_every_deferred_task_succeeds_on_celery_and_postgres(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    if SCHEDULER_RACES_FAST_RESUMES:
        emulator.set_job_timing(0.5, 3600.0)  # released by _finish_jobs
        run_id = deployment.trigger_dag(DAG_ID, {"batch": "steady"})
        _wait_until_all_deferred(deployment, run_id)
        _finish_jobs(deployment, emulator, run_id)
    else:
        emulator.set_job_timing(0.5, 2.0)
        run_id = deployment.trigger_dag(DAG_ID, {"batch": "steady"})
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=150)
    assert state == "success", deployment.run_report(DAG_ID, run_id)
    _assert_every_task_succeeded_with_its_own_job(deployment, emulator, run_id, "steady")
    # The tasks really ran on the Celery workers, recorded in the PostgreSQL metadata DB.
    hosts = {h for (h,) in deployment.query("SELECT DISTINCT hostname FROM task_instance WHERE run_id = %s", run_id)}
    assert hosts and hosts <= {"celery-worker-1", "celery-worker-2"}, hosts


def test_a_killed_triggerer_hands_its_triggers_to_the_other(deployment: ProductionServices, emulator: Emulator) -> None:
    emulator.set_job_timing(0.5, 3600.0)  # jobs run until the test lets them finish
    run_id = deployment.trigger_dag(DAG_ID, {"batch": "failover"})
    placement = _wait_until_all_deferred(deployment, run_id)
    victim = max(placement, key=lambda host: placement[host])
    survivor = next(t for t in TRIGGERERS if t != victim)
    deployment.kill(victim)

    deployment.wait_for(
        lambda: deployment.triggers_by_triggerer(DAG_ID, run_id) == {survivor: len(TASKS)},
        90,
        f"{survivor} to take over the {placement[victim]} trigger(s) of the killed {victim}",
    )
    _finish_jobs(deployment, emulator, run_id)
    state = deployment.wait_for_run(DAG_ID, run_id, timeout=120)
    assert state == "success", deployment.run_report(DAG_ID, run_id)
    _assert_every_task_succeeded_with_its_own_job(deployment, emulator, run_id, "failover")


# -- the callback receiver on the API server ------------------------------------------------------------------
def _post(services: ProductionServices, token: str, body: Any, content_type: str = "application/json") -> int:
    import httpx

    with httpx.Client(base_url=services.base_url, trust_env=False, timeout=30) as client:
        response = client.post(f"/tencent-ci/callbacks/{token}", content=body, headers={"Content-Type": content_type})
    return response.status_code


def test_the_api_server_receiver_stores_callbacks_in_the_relay(
    deployment: ProductionServices, relay_redis: RedisServer
) -> None:
    import redis

    plugins = deployment._request("GET", "/api/v2/plugins")["plugins"]
    assert "tencent_ci_callback_receiver" in [p["name"] for p in plugins]

    channel = redis.Redis.from_url(relay_redis.url).pubsub(ignore_subscribe_messages=True)
    channel.subscribe(callback_relay.CHANNEL)

    def next_published() -> callback_relay.RelayedCallback:
        message = None
        for _ in range(100):
            message = channel.get_message(timeout=0.2)
            if message is not None:
                return callback_relay.RelayedCallback.decode(message["data"])
        raise TimeoutError("nothing published on the relay channel")

    forged = f"{new_nonce()}.{'A' * 32}"
    assert _post(deployment, forged, CALLBACK) == 404
    assert _post(deployment, "short", CALLBACK) == 404
    token = token_for_nonce(new_nonce())
    assert _post(deployment, token, b"<Response><JobsDetail>", "application/xml") == 400
    assert _post(deployment, token, b"x" * (MAX_BODY_BYTES + 1)) == 413  # Content-Length says so
    # Chunked: refused as the in-triggerer listener does (one core); CI sends a Content-Length.
    assert _post(deployment, token, iter([b"x" * 65536] * (MAX_BODY_BYTES // 65536 + 1))) == 411
    assert _post(deployment, token, CALLBACK) == 200

    # Only the valid callback reached the relay: published once, and stored for a trigger that registers later.
    assert next_published() == callback_relay.RelayedCallback(token, CALLBACK, "application/json")
    assert channel.get_message(timeout=0.5) is None
    stored = redis.Redis.from_url(relay_redis.url).keys(callback_relay.KEY_PREFIX + "*")
    assert stored == [callback_relay.pending_key(token).encode()]

    async def take(token: str) -> list[callback_relay.RelayedCallback]:
        relay = callback_relay.CallbackRelay(relay_redis.url)
        try:
            return await relay.take_pending(token)
        finally:
            await relay.aclose()

    assert asyncio.run(take(token)) == [callback_relay.RelayedCallback(token, CALLBACK, "application/json")]

    # Relay down: 503, so that CI retries; back up: stored again.
    relay_redis.stop()
    try:
        assert _post(deployment, token, CALLBACK) == 503
    finally:
        relay_redis.start()
    assert _post(deployment, token, CALLBACK) == 200
    assert len(asyncio.run(take(token))) == 1
