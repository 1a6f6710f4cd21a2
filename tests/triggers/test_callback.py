"""CIJobCallbackTrigger and the callback listener: real HTTP from the emulator's job engine (and forged requests)."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator.faults import FaultConfig
from airflow_provider_tencent_ci.triggers import callback_listener as cl
from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger
from tests.triggers.helpers import (
    BUCKET,
    await_until,
    post,
    put_input,
    run_trigger_task,
    submit,
    xml_callback,
)


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(0.1, 0.3)
    put_input(tencent_conn)
    return tencent_conn


@pytest.fixture
def listener() -> cl.CallbackListener:
    return cl.get_listener()


def _new_callback() -> tuple[str, str]:
    nonce = cl.new_nonce()
    return nonce, cl.callback_url(cl.token_for_nonce(nonce))


def _trigger(job_id: str, nonce: str, **kw: Any) -> CIJobCallbackTrigger:
    kw.setdefault("poll_interval", 60.0)  # the fallback poll must not be what completes these tests
    return CIJobCallbackTrigger(job_id=job_id, bucket=BUCKET, region="ap-guangzhou", callback_nonce=nonce, **kw)


def _delivered(emu: Any, job_id: str) -> bool:
    return any(c["job_id"] == job_id and c.get("status") == 200 for c in emu.callbacks_sent)


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
async def test_callback_success(emu: Any, listener: cl.CallbackListener, fmt: str) -> None:
    emu.set_job_timing(0.3, 0.3)
    nonce, url = _new_callback()
    job_id = submit(CallBack=url, CallBackFormat=fmt)
    trigger = _trigger(job_id, nonce)
    task = run_trigger_task(trigger)
    event = await asyncio.wait_for(task, 20)
    assert event.payload["status"] == "success"
    assert event.payload["job"]["Operation"]["MediaResult"]
    # The emulator records the listener's 200 only after the listener has answered, which is after it woke the
    # trigger: wait for the record instead of racing it.
    await await_until(lambda: _delivered(emu, job_id))
    # One poll when the trigger started (job still running), one confirmation query for the callback.
    assert emu.stats.count(operation="DescribeJobs") <= 2


async def test_token_is_derived_and_kwargs_hold_no_secret(emu: Any) -> None:
    nonce, url = _new_callback()
    token = url.rsplit("/", 1)[-1]
    assert token != nonce and token.startswith(nonce + ".") and cl.verify_token(token)
    assert not cl.verify_token(nonce + ".forgedmacforgedmacforgedmacforge")
    _, kwargs = _trigger("a" * 33, nonce).serialize()
    assert token not in json.dumps(kwargs)
    assert emu.secret_key not in json.dumps(kwargs)


async def test_forged_callbacks_do_not_complete(emu: Any, listener: cl.CallbackListener) -> None:
    emu.set_job_timing(30, 30)
    nonce, url = _new_callback()
    job_id = submit(CallBack=url, CallBackFormat="XML")
    trigger = _trigger(job_id, nonce)
    task = run_trigger_task(trigger)
    await await_until(lambda: trigger._last_state == "Submitted")
    base = url.rsplit("/", 1)[0]
    # Wrong token: refused by the listener, the trigger never hears of it.
    wrong = await post(f"{base}/{cl.token_for_nonce(cl.new_nonce())[:-4]}AAAA", xml_callback(job_id, "Success"))
    assert wrong.status_code == 404
    # Right token, but a State the job does not have: accepted, confirmed with one query, ignored.
    before = emu.stats.count(operation="DescribeJobs")
    forged = await post(url, xml_callback(job_id, "Success"))
    assert forged.status_code == 200
    await await_until(lambda: emu.stats.count(operation="DescribeJobs") > before)
    await asyncio.sleep(0.3)
    assert not task.done()
    # A forged callback for another job id with the right token is ignored too.
    assert (await post(url, xml_callback("a" + "1" * 32, "Success"))).status_code == 200
    await asyncio.sleep(0.2)
    assert not task.done()
    emu.force_job_outcome(job_id, "Success")  # the real callback follows
    event = await asyncio.wait_for(task, 20)
    assert event.payload["status"] == "success"


async def test_failed_job_via_callback_carries_ci_message(emu: Any, listener: cl.CallbackListener) -> None:
    emu.set_job_timing(30, 30)
    nonce, url = _new_callback()
    job_id = submit(CallBack=url, CallBackFormat="JSON")
    task = run_trigger_task(_trigger(job_id, nonce))
    await asyncio.sleep(0.2)
    emu.force_job_outcome(job_id, "Failed", code="InputError", message="bad input video")
    event = await asyncio.wait_for(task, 20)
    assert (event.payload["status"], event.payload["code"], event.payload["message"]) == (
        "failed",
        "InputError",
        "bad input video",
    )


async def test_lost_callback_fallback_poll_completes(emu: Any, listener: cl.CallbackListener) -> None:
    emu.set_faults(FaultConfig(callback_drop_rate=1.0))
    nonce, url = _new_callback()
    job_id = submit(CallBack=url)
    event = await asyncio.wait_for(anext(_trigger(job_id, nonce, poll_interval=0.2).run()), 20)
    assert event.payload["status"] == "success"
    assert not _delivered(emu, job_id)


async def test_early_callback_is_buffered_until_the_trigger_starts(emu: Any, listener: cl.CallbackListener) -> None:
    nonce, url = _new_callback()
    token = cl.token_for_nonce(nonce)
    job_id = submit(CallBack=url)
    await await_until(lambda: _delivered(emu, job_id))  # CI called back before any trigger registered
    inbox: asyncio.Queue = asyncio.Queue()
    registration = listener.register(token, inbox)
    try:
        source, message = await asyncio.wait_for(inbox.get(), 5)
    finally:
        registration.close()
    assert source == "callback" and message.for_job(job_id)[0]["State"] == "Success"
    # And end to end: a trigger started after the callback completes through the buffered callback.
    nonce2, url2 = _new_callback()
    job2 = submit("out/o2.mp4", CallBack=url2)
    await await_until(lambda: _delivered(emu, job2))
    event = await asyncio.wait_for(anext(_trigger(job2, nonce2).run()), 20)
    assert event.payload["status"] == "success"


async def test_serialize_round_trip_mid_wait(emu: Any, listener: cl.CallbackListener) -> None:
    emu.set_job_timing(30, 30)
    nonce, url = _new_callback()
    job_id = submit(CallBack=url)
    trigger = _trigger(job_id, nonce, end_time=time.time() + 600)
    task = run_trigger_task(trigger)
    await await_until(lambda: trigger._last_state == "Submitted")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    new_task = run_trigger_task(rebuilt)
    await asyncio.sleep(0.2)
    emu.force_job_outcome(job_id, "Success")
    event = await asyncio.wait_for(new_task, 20)
    assert event.payload["status"] == "success"


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_listener_refuses_malformed_requests_and_keeps_serving(listener: cl.CallbackListener) -> None:
    token = cl.token_for_nonce(cl.new_nonce())
    url = f"{cl.callback_base_url()}/{token}"
    assert (await post(url, "<Response><JobsDetail>")).status_code == 400  # broken XML
    assert (await post(url, "{not json", "application/json")).status_code == 400
    assert (await post(url, json.dumps({"JobsDetail": [{"State": "Success"}]}), "application/json")).status_code == 400
    assert (await post(url, "<Other/>")).status_code == 400
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        "<Response><EventName>&lol2;</EventName></Response>"
    )
    assert (await post(url, bomb)).status_code == 400  # entities refused (defusedxml)
    assert (await post(url, b"x" * (cl.MAX_BODY_BYTES + 1))).status_code == 413
    async with __import__("httpx").AsyncClient(trust_env=False) as client:
        assert (await client.get(url)).status_code == 405
    no_length = await _raw(listener.port, f"POST /x/{token} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert no_length.startswith(b"HTTP/1.1 411")
    garbage = await _raw(listener.port, b"\x00\x01garbage\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")
    # Still serving: a well-formed JSON callback (single object, numbers as numbers) is accepted and buffered.
    body = json.dumps(
        {
            "EventName": "TaskFinish",
            "JobsDetail": {"JobId": "a" + "2" * 32, "State": "Success", "Operation": {"JobLevel": 1}},
        }
    )
    assert (await post(url, body, "application/json")).status_code == 200


async def test_listener_read_timeout(listener: cl.CallbackListener) -> None:
    slow = cl.CallbackListener("127.0.0.1", 0, read_timeout=0.3).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", slow.port)
        token = cl.token_for_nonce(cl.new_nonce())
        writer.write(f"POST /{token} HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")
    finally:
        slow.stop()


def test_parse_callback_shapes() -> None:
    xml = cl.parse_callback(xml_callback("a1", "Success").encode())
    assert xml.fmt == "XML" and xml.event_name == "TaskFinish" and xml.jobs[0]["JobId"] == "a1"
    as_list = cl.parse_callback(
        json.dumps(
            {"EventName": "WorkflowFinish", "JobsDetail": [{"JobId": "a2", "State": "Failed", "Code": 7}]}
        ).encode(),
        "application/json",
    )
    assert as_list.event_name == "WorkflowFinish" and as_list.jobs[0]["Code"] == "7"
    single = cl.parse_callback(b'{"JobsDetail": {"JobId": "a3", "State": "Success"}}')
    assert single.fmt == "JSON" and single.jobs[0]["JobId"] == "a3"


async def test_a_polling_trigger_starts_the_listener_so_the_port_serves_before_any_callback_trigger(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 4: any provider trigger's run() starts the listener (a load balancer health-checks the port)."""
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobTrigger
    from tests.triggers.helpers import _free_port

    port = _free_port()
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(port))
    cl.reset_listener()
    try:
        emu.set_job_timing(30, 30)
        job_id = submit()
        task = run_trigger_task(CIJobTrigger(job_id=job_id, bucket=BUCKET, region="ap-guangzhou", poll_interval=60))
        await await_until(lambda: cl._INSTANCE is not None and cl._INSTANCE.running)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the port accepts connections
        writer.close()
        await writer.wait_closed()
        assert not task.done()  # a polling trigger: still waiting on its job
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        cl.reset_listener()


async def test_a_callback_trigger_without_a_token_key_logs_it_and_polls(
    emu: Any,
    listener: cl.CallbackListener,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The key removed after the job was submitted: the trigger says so and completes by its fallback poll."""
    nonce, url = _new_callback()
    job_id = submit(CallBack=url)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", "")
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
    event = await asyncio.wait_for(anext(_trigger(job_id, nonce, poll_interval=0.2).run()), 20)
    assert event.payload["status"] == "success"
    out, err = capfd.readouterr()  # the trigger logs through Airflow's structlog, to the process output
    logged = out + err + caplog.text
    assert "Cannot receive CI callbacks" in logged and "callback_token_key" in logged, logged[-2000:]
