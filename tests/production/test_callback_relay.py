"""The Redis callback relay against a real redis-server on loopback (no Airflow processes)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callback_relay import (
    PENDING_TTL_SECONDS,
    CallbackRelay,
    CallbackRelayError,
    RelayedCallback,
    RelaySubscriber,
    pending_key,
)
from tests.production.deployment import REPO, RedisServer, require_packages

BODY = b'{"EventName":"TaskFinish","JobsDetail":{"JobId":"a1","State":"Success"}}'
JSON = "application/json"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    require_packages()
    server = RedisServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
async def relay(redis_server: RedisServer) -> AsyncIterator[CallbackRelay]:
    relay = CallbackRelay(redis_server.url)
    yield relay
    await relay.aclose()


class Recorder:
    """A `deliver` coroutine holding some tokens, recording every call (it runs on the subscriber's thread)."""

    def __init__(self, *held: str) -> None:
        self.held = set(held)
        self.calls: list[tuple[str, bytes, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, token: str, body: bytes, content_type: str) -> bool:
        with self._lock:
            self.calls.append((token, body, content_type))
        return token in self.held

    def tokens(self) -> list[str]:
        with self._lock:
            return [token for token, _, _ in self.calls]


async def eventually(condition: Callable[[], Any], what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def numsub(server: RedisServer) -> int:
    import redis

    counts = dict(redis.Redis.from_url(server.url).pubsub_numsub(callback_relay.CHANNEL))
    return int(counts[callback_relay.CHANNEL.encode()])


async def test_a_callback_published_before_its_trigger_registers_is_taken_once(
    relay: CallbackRelay, redis_server: RedisServer
) -> None:
    import redis

    await relay.publish("tok-early-000000000001", BODY, JSON)
    ttl = redis.Redis.from_url(redis_server.url).ttl(pending_key("tok-early-000000000001"))
    assert 0 < ttl <= PENDING_TTL_SECONDS
    assert await relay.take_pending("tok-early-000000000001") == [RelayedCallback("tok-early-000000000001", BODY, JSON)]
    assert await relay.take_pending("tok-early-000000000001") == []  # taken, not copied


async def test_a_trigger_registering_late_takes_its_callback_through_the_process_subscriber(
    relay: CallbackRelay, redis_server: RedisServer
) -> None:
    await relay.publish("tok-late-0000000000001", BODY, JSON)  # before anyone subscribed: nobody hears it
    subscriber = RelaySubscriber(redis_server.url, Recorder()).start()
    try:
        await eventually(subscriber.subscribed.is_set, "the subscription")
        # From this test's loop, as a trigger on the triggerer's loop would: it runs on the subscriber's client.
        taken = await subscriber.take_pending("tok-late-0000000000001")
        assert taken == [RelayedCallback("tok-late-0000000000001", BODY, JSON)]
        assert await subscriber.take_pending("tok-late-0000000000001") == []
    finally:
        subscriber.stop()


async def test_one_subscription_per_process_however_many_triggers_ask(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callback_relay, "_SUBSCRIBER", None)
    monkeypatch.setattr(callback_relay, "_SAID_PROCESS_LOCAL", False)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", redis_server.url)
    try:
        subscribers = await asyncio.gather(*(callback_relay.ensure_subscriber(Recorder()) for _ in range(5)))
        first = subscribers[0]
        assert first is not None
        assert all(s is first for s in subscribers)
        await eventually(first.subscribed.is_set, "the subscription")
        assert numsub(redis_server) == 1
    finally:
        callback_relay.stop_subscriber()


async def test_pending_callbacks_per_token_are_capped_to_the_newest(relay: CallbackRelay) -> None:
    for i in range(callback_relay.PENDING_MAX_PER_TOKEN + 3):
        await relay.publish("tok-capped-0000000001", str(i).encode(), "text/plain")
    taken = await relay.take_pending("tok-capped-0000000001")
    assert [int(c.body) for c in taken] == list(range(3, callback_relay.PENDING_MAX_PER_TOKEN + 3))


async def test_a_callback_published_after_subscribing_is_delivered_once(
    relay: CallbackRelay, redis_server: RedisServer
) -> None:
    recorder = Recorder("tok-live-0000000000001")
    subscriber = RelaySubscriber(redis_server.url, recorder).start()
    try:
        await eventually(subscriber.subscribed.is_set, "the subscription")
        await relay.publish("tok-live-0000000000001", BODY, JSON)
        # A second message for a token nobody holds: once it arrived, the first one cannot still be in flight.
        await relay.publish("tok-nobody-00000000001", b"<Response/>", "application/xml")
        await eventually(lambda: len(recorder.calls) == 2, "both messages")
        assert recorder.calls == [
            ("tok-live-0000000000001", BODY, JSON),
            ("tok-nobody-00000000001", b"<Response/>", "application/xml"),
        ]
        assert (subscriber.delivered, subscriber.ignored) == (1, 1)
    finally:
        subscriber.stop()


def test_two_subscriber_processes_only_the_holder_acts(redis_server: RedisServer, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    outputs = {name: tmp_path / f"{name}.txt" for name in ("first", "second")}
    held = {"first": "tok-first-00000000001", "second": "tok-second-0000000001"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.production.relay_subscriber_process", redis_server.url, held[n], str(out)],
            env=env,
            cwd=REPO,
        )
        for n, out in outputs.items()
    ]
    try:
        asyncio.run(eventually(lambda: numsub(redis_server) == 2, "two subscribed processes", timeout=60))

        async def publish_both() -> None:
            relay = CallbackRelay(redis_server.url)
            for token in held.values():
                await relay.publish(token, BODY, JSON)
            await relay.aclose()

        asyncio.run(publish_both())

        def lines(name: str) -> list[str]:
            return outputs[name].read_text().splitlines() if outputs[name].exists() else []

        asyncio.run(eventually(lambda: len(lines("first")) == 2 and len(lines("second")) == 2, "both processes"))
        assert lines("first") == [f"acted {held['first']}", f"ignored {held['second']}"]
        assert lines("second") == [f"ignored {held['first']}", f"acted {held['second']}"]
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


async def test_redis_down_publish_fails_clearly_and_the_subscriber_reconnects(redis_server: RedisServer) -> None:
    recorder = Recorder("tok-outage-0000000001")
    subscriptions: list[int] = []

    async def on_subscribed() -> None:
        subscriptions.append(1)

    subscriber = RelaySubscriber(redis_server.url, recorder, on_subscribed).start()
    relay = CallbackRelay(redis_server.url)
    try:
        await eventually(subscriber.subscribed.is_set, "the subscription")
        redis_server.stop()
        with pytest.raises(CallbackRelayError, match=rf"callback relay redis://127\.0\.0\.1:{redis_server.port}/0 "):
            await relay.publish("tok-outage-0000000001", BODY, JSON)
        assert await relay.take_pending("tok-outage-0000000001") == []  # logged, not raised: the poll covers it
        await eventually(lambda: not subscriber.subscribed.is_set(), "the subscriber to notice the outage")

        redis_server.start()
        await eventually(subscriber.subscribed.is_set, "the subscriber to reconnect", timeout=30)
        assert len(subscriptions) == 2  # the owner can take pending callbacks after every (re)subscription
        await relay.publish("tok-outage-0000000001", BODY, JSON)
        await eventually(lambda: subscriber.delivered == 1, "the callback after the restart")
        assert recorder.tokens() == ["tok-outage-0000000001"]
    finally:
        subscriber.stop()
        await relay.aclose()


def test_without_a_relay_callbacks_are_process_local_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callback_relay, "_SAID_PROCESS_LOCAL", False)
    caplog.set_level(logging.WARNING, logger=callback_relay.__name__)
    assert callback_relay.relay_url() is None
    assert callback_relay.start_subscriber(None, Recorder()) is None
    assert callback_relay.start_subscriber(None, Recorder()) is None
    said = [r for r in caplog.records if "process-local" in r.getMessage()]
    assert len(said) == 1, said


def test_the_relay_url_comes_from_an_airflow_redis_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {
        "conn_type": "redis",
        "host": "redis.internal",
        "port": 6380,
        "login": "airflow",
        "password": "p@ss/word",
        "extra": {"db": 2, "ssl": True},
    }
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_CI_RELAY_TEST", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID", "tencent_ci_relay_test")
    url = callback_relay.relay_url()
    assert url == "rediss://airflow:p%40ss%2Fword@redis.internal:6380/2"
    assert callback_relay.redacted(url) == "rediss://redis.internal:6380/2"

    monkeypatch.delenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", "redis://127.0.0.1:6390/1")
    assert callback_relay.relay_url() == "redis://127.0.0.1:6390/1"


# -- the in-triggerer listener wired to the relay (what every provider trigger's run() sets up) ------------------
@pytest.fixture
async def relayed_listener(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The process's listener and relay subscriber as ``ensure_listener()`` starts them, on a free port."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from tests.services.airflow_services import free_port

    port = free_port()
    _listener_with_relay(monkeypatch, redis_server.url, port)
    try:
        listener = await cl.ensure_listener()
        assert listener is not None and listener.running
        subscriber = callback_relay.current_subscriber()
        assert subscriber is not None
        await eventually(subscriber.subscribed.is_set, "the subscription")
        yield listener
    finally:
        cl.reset_listener()
        callback_relay.stop_subscriber()


async def _post_to(url: str, body: bytes) -> int:
    import httpx

    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        return (await client.post(url, content=body, headers={"Content-Type": JSON})).status_code


async def test_the_listener_publishes_to_the_relay_and_the_subscriber_wakes_only_local_registrations(
    relayed_listener: Any, redis_server: RedisServer
) -> None:
    import redis

    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers._asyncio import Mailbox

    token, elsewhere = cl.token_for_nonce(cl.new_nonce()), cl.token_for_nonce(cl.new_nonce())
    mailbox = Mailbox()
    registration = await relayed_listener.listen(token, mailbox)
    try:
        assert await _post_to(cl.callback_url(token), BODY) == 200
        item = await mailbox.get(10)
        assert item is not None and item[0] == "callback" and item[1].job_ids() == ["a1"]
        # Stored in Redis too (for a trigger that registers later), and not routed in-process.
        assert redis.Redis.from_url(redis_server.url).exists(pending_key(token))
        assert relayed_listener.router.buffered == 0

        # A token another triggerer holds: published, ignored here, never buffered as "early" in this process.
        subscriber = callback_relay.current_subscriber()
        assert subscriber is not None
        ignored = subscriber.ignored
        assert await _post_to(cl.callback_url(elsewhere), BODY) == 200
        await eventually(lambda: subscriber.ignored == ignored + 1, "the relayed callback for another process")
        assert relayed_listener.router.early == {} and mailbox.empty()
    finally:
        registration.close()

    # The trigger of `elsewhere` registers here later (it moved): it takes the stored callback at once.
    moved = Mailbox()
    registration = await relayed_listener.listen(elsewhere, moved)
    try:
        item = await moved.get(10)
        assert item is not None and item[1].job_ids() == ["a1"]
    finally:
        registration.close()


async def test_the_listener_answers_503_while_the_relay_is_down_so_ci_retries(
    relayed_listener: Any, redis_server: RedisServer
) -> None:
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    token = cl.token_for_nonce(cl.new_nonce())
    redis_server.stop()
    try:
        assert await _post_to(cl.callback_url(token), BODY) == 503
        assert relayed_listener.router.buffered == 0  # not kept here either: CI's retry is the copy
    finally:
        redis_server.start()
    assert await _post_to(cl.callback_url(token), BODY) == 200


async def test_relay_down_mid_wait_nothing_lost_fallback_poll_then_callbacks_again(
    relayed_listener: Any, redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stops while triggers wait: CI's callbacks are refused with 503 (nothing stored anywhere), the tasks
    finish by their (short) fallback poll; Redis back: a trigger with the default 300 s fallback finishes by its
    callback within seconds."""
    from airflow_provider_tencent_ci.emulator.server import Emulator

    with Emulator(data_dir=tmp_path / "emulator") as emu:
        conn_env, conn_value = emu.airflow_conn_env()
        monkeypatch.setenv(conn_env, conn_value)
        await _relay_down_then_back(emu, redis_server)


async def _relay_down_then_back(emu: Any, redis_server: RedisServer) -> None:
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger
    from tests.triggers.helpers import BUCKET, REGION, put_input, run_trigger_task, submit

    put_input(emu)
    emu.set_job_timing(0.1, 3600.0)

    def wait_for(job_name: str, poll_interval: float) -> tuple[str, asyncio.Task]:
        nonce = cl.new_nonce()
        job_id = submit(f"out/{job_name}.mp4", CallBack=cl.callback_url(cl.token_for_nonce(nonce)))
        trigger = CIJobCallbackTrigger(
            job_id=job_id, bucket=BUCKET, region=REGION, callback_nonce=nonce, poll_interval=poll_interval
        )
        return job_id, run_trigger_task(trigger)

    def answers(job_id: str) -> list[int | None]:
        return [c["status"] for c in emu.callbacks_sent if c["job_id"] == job_id]

    waiting = [wait_for(f"relay-down-{i}", 2.0) for i in range(3)]
    await asyncio.sleep(0.5)  # registered, first poll done (Running)
    redis_server.stop()
    try:
        ended = time.monotonic()
        for job_id, _ in waiting:
            emu.force_job_outcome(job_id, "Success")
        events = await asyncio.wait_for(asyncio.gather(*(task for _, task in waiting)), 15)
        by_poll = time.monotonic() - ended
        assert [e.payload["status"] for e in events] == ["success"] * len(waiting)
        for job_id, _ in waiting:  # every attempt refused (CI retried), none stored: the poll found the jobs
            await eventually(lambda job_id=job_id: len(answers(job_id)) == 3, "CI's three attempts")
            assert answers(job_id) == [503, 503, 503]
    finally:
        redis_server.start()
    subscriber = callback_relay.current_subscriber()
    assert subscriber is not None
    await eventually(subscriber.subscribed.is_set, "the subscriber to reconnect", timeout=30)

    job_id, task = wait_for("relay-back", 300.0)  # the default fallback: only a callback can finish it in time
    await asyncio.sleep(0.5)
    ended = time.monotonic()
    emu.force_job_outcome(job_id, "Success")
    event = await asyncio.wait_for(task, 10)
    by_callback = time.monotonic() - ended
    assert event.payload["status"] == "success"
    # The emulator records its delivery after the answer arrives, which may be after the trigger already woke.
    await eventually(lambda: answers(job_id) == [200], "the emulator's record of the stored callback")
    assert answers(job_id) == [200]
    print(
        f"\nrelay down: {len(waiting)} done by fallback poll in {by_poll:.2f}s; back: by callback in {by_callback:.2f}s"
    )


async def test_a_triggerer_whose_port_is_taken_gets_callbacks_through_the_relay_then_binds(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port held by another process: callbacks received elsewhere (the API server's receiver) reach this
    process's trigger through the relay meanwhile; once the port is free the listener binds by itself and serves."""
    import socket

    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers._asyncio import Mailbox

    monkeypatch.setattr(cl, "BIND_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(cl, "BIND_RETRY_MAX_SECONDS", 0.2)
    occupant = socket.create_server(("127.0.0.1", 0))
    port = occupant.getsockname()[1]
    _listener_with_relay(monkeypatch, redis_server.url, port)
    publisher = CallbackRelay(redis_server.url)
    try:
        listener = await cl.ensure_listener()
        assert listener is not None and not listener.running
        subscriber = callback_relay.current_subscriber()
        assert subscriber is not None
        await eventually(subscriber.subscribed.is_set, "the subscription")
        token = cl.token_for_nonce(cl.new_nonce())
        mailbox = Mailbox()
        registration = await listener.listen(token, mailbox)
        try:
            await publisher.publish(token, BODY, JSON)  # what another receiver does with CI's callback
            item = await mailbox.get(10)
            assert item is not None and item[1].job_ids() == ["a1"]
            assert not listener.running

            occupant.close()
            await eventually(lambda: listener.running, "the listener to bind the freed port")
            assert await _post_to(cl.callback_url(token), BODY) == 200  # this port now serves, via the relay
            item = await mailbox.get(10)
            assert item is not None and item[1].job_ids() == ["a1"]
            assert cl._INSTANCE is listener
        finally:
            registration.close()
    finally:
        occupant.close()
        await publisher.aclose()
        cl.reset_listener()
        callback_relay.stop_subscriber()


def _listener_with_relay(monkeypatch: pytest.MonkeyPatch, relay_url: str, port: int) -> None:
    """This process as a triggerer: a keyed callback listener on ``port`` (also the base URL) and the relay."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", "relay-listener-test-key")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", relay_url)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(port))
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(callback_relay, "_SAID_PROCESS_LOCAL", False)
    cl.reset_listener()
    callback_relay.stop_subscriber()
