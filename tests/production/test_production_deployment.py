"""SegmentVideoBody at production shape: PostgreSQL, CeleryExecutor (Redis broker, two workers), two triggerers.

N deferrable tasks run on the Celery workers and wait in the triggerers; the emulator is the cloud. Every task
succeeds with its own job (exactly N jobs, XCom and the CI job link stored), and when the triggerer holding the
waiting triggers is SIGKILLed, the other triggerer takes them over and every task still succeeds without a second
job. Both in polling mode and in callback mode (issue 13): CI calls the API server's receiver plugin
(``callback_base_url``), which publishes to the Redis relay; the triggerer holding the token is woken through its
subscription, with the fallback poll at its default 300 s, so every task must succeed within
:data:`CALLBACK_BOUND_SECONDS` of its job's end. The relay has its own redis-server here (production may share the
broker's) so that stopping it does not stop Celery.

The job-end-to-task-success latencies are written to :data:`FIGURES` (BENCHMARKS.md "Callbacks at production
shape" reads them).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_tencent_ci.common.times import parse_iso_time
from airflow_provider_tencent_ci.emulator.server import Emulator
from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callback_listener import MAX_BODY_BYTES, new_nonce, token_for_nonce
from tests.production.deployment import (
    REPO,
    TRIGGERERS,
    WORKERS,
    ProductionServices,
    RedisServer,
    production_deployment,
    require_packages,
)
from tests.services.airflow_services import free_port

pytestmark = pytest.mark.services

DAGS = Path(__file__).with_name("dags")
DAG_ID = "production_video_body"
CALLBACK_DAG_ID = "production_video_body_callback"
# Issue 13: with callbacks, a task succeeds within this long of its job's end (CI's EndTime has 1 s resolution).
CALLBACK_BOUND_SECONDS = 10.0
PIPELINE_DAG_ID = "tencent_ci_event_pipeline"
EVENT_BUCKET = "eventbucket"
BURST = 6
LISTENER_PORT = free_port()
FIGURES = Path(os.environ.get("TENCENT_CI_PRODUCTION_FIGURES", "/tmp/tencent-ci-production-figures.json"))
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
    shutil.copy(DAGS / "production_video_body.py", dags / "production_video_body.py")  # both DAGs
    # The example event pipeline as shipped, with a test-sized list poll (its watcher is built at parse time).
    pipeline = (REPO / "example_dags" / f"{PIPELINE_DAG_ID}.py").read_text()
    assert pipeline.count("poll_interval=60,") == 1, "the example's watcher poll interval moved: update this test"
    (dags / f"{PIPELINE_DAG_ID}.py").write_text(pipeline.replace("poll_interval=60,", "poll_interval=5,"))
    emulator.create_bucket(EVENT_BUCKET)
    emulator.put_object(EVENT_BUCKET, "videos/burst.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 4096)
    conn_env, conn_value = emulator.airflow_conn_env()
    relay_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": relay_redis.port, "extra": {"db": 0}}
    env = {
        conn_env: conn_value,
        "AIRFLOW_CONN_TENCENT_CI_RELAY": json.dumps(relay_conn),
        "AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID": "tencent_ci_relay",
        "AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY": TOKEN_KEY,
        # The event pipeline watches (and its tasks use) its own bucket: the other tests' jobs are not its events.
        "AIRFLOW_VAR_TENCENT_CI_BUCKET": emulator.bucket_name(EVENT_BUCKET),
        # Both triggerers' listeners try this port: the first to run a provider trigger serves it, the other
        # receives through the relay only.
        "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST": "127.0.0.1",
        "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT": str(LISTENER_PORT),
    }
    # This process makes the tokens the receiver checks: the same key (the suite's own key is restored after).
    previous_key = os.environ.get("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY")
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"] = TOKEN_KEY
    try:
        with production_deployment(tmp_path_factory.mktemp("home"), dags, env) as services:
            services.wait_for_dag(DAG_ID)
            services.wait_for_dag(CALLBACK_DAG_ID)
            services.wait_for_dag(PIPELINE_DAG_ID)
            yield services
    finally:
        if previous_key is None:
            del os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"]
        else:
            os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"] = previous_key


def _jobs_of(emu: Emulator, batch: str) -> list[dict[str, Any]]:
    return [
        job
        for job in emu.jobs
        if job["Tag"] == "SegmentVideoBody" and str(job["Operation"]["Output"]["Object"]).startswith(f"out/{batch}/")
    ]


def _assert_every_task_succeeded_with_its_own_job(
    services: ProductionServices, emu: Emulator, run_id: str, batch: str, dag_id: str = DAG_ID
) -> None:
    states = {task: ti["state"] for task, ti in services.task_instances(dag_id, run_id).items()}
    assert states == dict.fromkeys(TASKS, "success"), (states, services.home)
    jobs = _jobs_of(emu, batch)
    assert len(jobs) == len(TASKS), [j["JobId"] for j in jobs]
    assert {j["State"] for j in jobs} == {"Success"}
    job_ids = {j["JobId"] for j in jobs}
    returned = {task: services.xcom(dag_id, run_id, task) for task in TASKS}
    assert {r["JobId"] for r in returned.values()} == job_ids
    assert {r["State"] for r in returned.values()} == {"Success"}
    for task, result in returned.items():
        link = services.xcom(dag_id, run_id, task, key="ci_job")
        assert link["job_id"] == result["JobId"], (task, link)
    # The link as the UI shows it, through the REST API.
    run = quote(run_id, safe="")
    links = services._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run}/taskInstances/{TASKS[0]}/links")
    assert returned[TASKS[0]]["JobId"] in str(links["extra_links"].get("CI Job")), links


def _wait_until_all_deferred(deployment: ProductionServices, run_id: str, dag_id: str = DAG_ID) -> dict[str, int]:
    """Every task of the run deferred, and its trigger running on a live triggerer; returns the placement."""

    def placement() -> dict[str, int] | None:
        running = {h: n for h, n in deployment.triggers_by_triggerer(dag_id, run_id).items() if h in TRIGGERERS}
        return running if sum(running.values()) == len(TASKS) else None

    return dict(deployment.wait_for(placement, 150, "every task deferred to a running triggerer"))


def _finish_jobs(deployment: ProductionServices, emulator: Emulator, run_id: str, dag_id: str = DAG_ID) -> None:
    """Let every job of the run finish now.

    Airflow < 3.3 fails a task whose trigger fires before the scheduler has processed the Celery "success" of the
    worker's exit after ``defer()`` (3.3.2's ``scheduler_job_runner`` checks for this "resume-after-defer" case;
    3.1.8's does not). That is a core race, not the provider's: on those versions, wait for the scheduler first.
    """
    if SCHEDULER_RACES_FAST_RESUMES:
        deployment.wait_for(
            lambda: deployment.deferral_exits_processed(dag_id, run_id) >= set(TASKS),
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
    latencies = _latencies(deployment, emulator, run_id, "steady", DAG_ID)
    _record("polling_2s_interval_2_triggerers", deployment, emulator, "steady", latencies)
    # The tasks really ran on the Celery workers, recorded in the PostgreSQL metadata DB.
    hosts = {h for (h,) in deployment.query("SELECT DISTINCT hostname FROM task_instance WHERE run_id = %s", run_id)}
    assert hosts and hosts <= {"celery-worker-1", "celery-worker-2"}, hosts


# -- callback mode: the API server's receiver, the relay, two triggerers ------------------------------------------
def _latencies(
    services: ProductionServices, emu: Emulator, run_id: str, batch: str, dag_id: str = CALLBACK_DAG_ID
) -> dict[str, float]:
    """Per task: seconds from its job's EndTime (the emulator) to the task instance's end_date (the REST API)."""
    task_instances = services.task_instances(dag_id, run_id)
    latencies = {}
    for job in _jobs_of(emu, batch):
        index = str(job["Operation"]["Output"]["Object"]).rsplit("clip-", 1)[1].split(".")[0]
        task = f"segment_{index}"
        job_end, task_end = parse_iso_time(job["EndTime"]), parse_iso_time(task_instances[task]["end_date"])
        assert job_end is not None and task_end is not None, (job, task_instances[task])
        latencies[task] = round(task_end.timestamp() - job_end.timestamp(), 3)
    return latencies


def _assert_prompt_and_through_the_receiver(
    services: ProductionServices, emu: Emulator, run_id: str, batch: str, receiver: str | None = None
) -> dict[str, float]:
    latencies = _latencies(services, emu, run_id, batch)
    assert sorted(latencies) == sorted(TASKS), latencies
    late = {task: s for task, s in latencies.items() if s > CALLBACK_BOUND_SECONDS}
    assert not late, f"tasks done more than {CALLBACK_BOUND_SECONDS}s after their job: {late}"
    # Every job's callback went to the receiver (the API server's by default) and was stored in the relay at the
    # first attempt.
    job_ids = {job["JobId"] for job in _jobs_of(emu, batch)}
    sent = [c for c in emu.callbacks_sent if c["job_id"] in job_ids]
    assert {c["job_id"] for c in sent} == job_ids
    assert {(c["status"], c["attempt"]) for c in sent} == {(200, 1)}, sent
    assert {c["url"].rsplit("/", 1)[0] for c in sent} == {receiver or services.callback_receiver_url}
    return latencies


def _summary(latencies: list[float]) -> dict[str, Any]:
    values = sorted(latencies)
    if not values:
        return {"n": 0}
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(values), 2), "p99": round(p99, 2), "values": values}


def _record(
    scenario: str, services: ProductionServices, emu: Emulator, batch: str, latencies: dict[str, float], **details: Any
) -> None:
    """Add one scenario to FIGURES, under this Airflow version (BENCHMARKS.md reads them): job end to task success
    (``task``), and job end to the trigger's event (``event``, from the triggerers' logs)."""
    fired = services.trigger_event_times()
    to_event = []
    for job in _jobs_of(emu, batch):
        job_end = parse_iso_time(job["EndTime"])
        if job["JobId"] in fired and job_end is not None:
            to_event.append(round(fired[job["JobId"]] - job_end.timestamp(), 3))
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures.setdefault(airflow_version, {})[scenario] = {
        "task": _summary(list(latencies.values())),
        "event": _summary(to_event),
        **details,
    }
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True))


def test_callbacks_through_the_api_server_and_relay_finish_every_task_within_seconds(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    emulator.set_job_timing(0.5, 3600.0)  # every job runs until all triggers wait; then they end together
    run_id = deployment.trigger_dag(CALLBACK_DAG_ID, {"batch": "callback"})
    placement = _wait_until_all_deferred(deployment, run_id, CALLBACK_DAG_ID)
    _finish_jobs(deployment, emulator, run_id, CALLBACK_DAG_ID)
    state = deployment.wait_for_run(CALLBACK_DAG_ID, run_id, timeout=120)
    assert state == "success", deployment.run_report(CALLBACK_DAG_ID, run_id)
    _assert_every_task_succeeded_with_its_own_job(deployment, emulator, run_id, "callback", CALLBACK_DAG_ID)
    latencies = _assert_prompt_and_through_the_receiver(deployment, emulator, run_id, "callback")
    _record(
        "callback_api_receiver_relay_2_triggerers", deployment, emulator, "callback", latencies, placement=placement
    )


def test_callbacks_through_a_triggerers_listener_and_the_relay_finish_every_task_within_seconds(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    """CI calls the in-triggerer listener (one triggerer serves the port; the trigger may be on either one): the
    listener publishes to the relay and the holder's subscription wakes it. The workers tell CI that URL."""
    listener_base = f"http://127.0.0.1:{LISTENER_PORT}/tencent-ci/callbacks"
    setting = "AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL"
    deployment.env[setting] = listener_base
    for worker in WORKERS:
        deployment.restart_component(worker)
    try:
        emulator.set_job_timing(0.5, 3600.0)
        run_id = deployment.trigger_dag(CALLBACK_DAG_ID, {"batch": "callback-listener"})
        placement = _wait_until_all_deferred(deployment, run_id, CALLBACK_DAG_ID)
        _finish_jobs(deployment, emulator, run_id, CALLBACK_DAG_ID)
        state = deployment.wait_for_run(CALLBACK_DAG_ID, run_id, timeout=120)
        assert state == "success", deployment.run_report(CALLBACK_DAG_ID, run_id)
        _assert_every_task_succeeded_with_its_own_job(
            deployment, emulator, run_id, "callback-listener", CALLBACK_DAG_ID
        )
        latencies = _assert_prompt_and_through_the_receiver(
            deployment, emulator, run_id, "callback-listener", listener_base
        )
        _record(
            "callback_triggerer_listener_relay_2_triggerers",
            deployment,
            emulator,
            "callback-listener",
            latencies,
            placement=placement,
        )
    finally:
        deployment.env[setting] = deployment.callback_receiver_url
        for worker in WORKERS:
            deployment.restart_component(worker)


def test_a_killed_triggerer_hands_its_callback_triggers_to_the_other_without_losing_a_callback(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    emulator.set_job_timing(0.5, 3600.0)
    run_id = deployment.trigger_dag(CALLBACK_DAG_ID, {"batch": "callback-failover"})
    placement = _wait_until_all_deferred(deployment, run_id, CALLBACK_DAG_ID)
    victim = max(placement, key=lambda host: placement[host])
    survivor = next(t for t in TRIGGERERS if t != victim)
    deployment.kill(victim)
    try:
        deployment.wait_for(
            lambda: deployment.triggers_by_triggerer(CALLBACK_DAG_ID, run_id) == {survivor: len(TASKS)},
            90,
            f"{survivor} to take over the {placement[victim]} callback trigger(s) of the killed {victim}",
        )
        _finish_jobs(deployment, emulator, run_id, CALLBACK_DAG_ID)
        state = deployment.wait_for_run(CALLBACK_DAG_ID, run_id, timeout=120)
        assert state == "success", deployment.run_report(CALLBACK_DAG_ID, run_id)
        _assert_every_task_succeeded_with_its_own_job(
            deployment, emulator, run_id, "callback-failover", CALLBACK_DAG_ID
        )
        latencies = _assert_prompt_and_through_the_receiver(deployment, emulator, run_id, "callback-failover")
        _record(
            "callback_api_receiver_relay_1_triggerer_after_failover",
            deployment,
            emulator,
            "callback-failover",
            latencies,
            moved=placement[victim],
        )
    finally:
        deployment.start_component(victim)  # the polling failover test needs two triggerers again


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


# -- issue 13 item 5: a burst of jobs finishing at once reaches the event pipeline's DAG runs ---------------------
def _pipeline_runs(services: ProductionServices) -> list[dict[str, Any]]:
    return list((services._get(f"/api/v2/dags/{PIPELINE_DAG_ID}/dagRuns?limit=100") or {}).get("dag_runs", []))


def test_jobs_finishing_at_once_all_reach_the_event_pipeline_once(
    deployment: ProductionServices, emulator: Emulator
) -> None:
    emulator.set_job_timing(0.5, 3600.0)
    client = emulator.cos_client()
    bucket = emulator.bucket_name(EVENT_BUCKET)
    job_ids = []
    for index in range(BURST):
        request = {
            "Tag": "SegmentVideoBody",
            "Input": {"Object": "videos/burst.mp4"},
            "Operation": {
                "SegmentVideoBody": {"Mode": "Mask"},
                "Output": {"Region": emulator.region, "Bucket": bucket, "Object": f"burst/clip-{index}.mp4"},
            },
        }
        job_ids.append(client.ci_create_media_jobs(Bucket=bucket, Jobs=request, Lst={})["JobsDetail"][0]["JobId"])
    emulator.set_job_timing(0.0, 0.5)  # every job ends now, together

    def published() -> bool:
        keys = set(emulator.list_keys(EVENT_BUCKET, "published/"))
        return all(f"published/{job_id}/manifest.json" in keys for job_id in job_ids)

    deployment.wait_for(published, 90, f"the event pipeline to publish all {BURST} jobs of the burst")

    def runs_done() -> list[dict[str, Any]] | None:
        runs = _pipeline_runs(deployment)
        return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

    runs = deployment.wait_for(runs_done, 60, "every event pipeline run to finish")
    assert {r["state"] for r in runs} == {"success"}, runs
    processed: list[str] = []
    for run in runs:
        resolved = deployment.xcom(PIPELINE_DAG_ID, run["dag_run_id"], "resolve_jobs") or []
        processed += [str(job["JobId"]) for job in resolved]
    assert sorted(processed) == sorted(job_ids), (processed, job_ids)  # every job, none twice


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

    stored_before = set(redis.Redis.from_url(relay_redis.url).keys(callback_relay.KEY_PREFIX + "*"))
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
    stored = set(redis.Redis.from_url(relay_redis.url).keys(callback_relay.KEY_PREFIX + "*")) - stored_before
    assert stored == {callback_relay.pending_key(token).encode()}

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
