"""Shared helpers for the CI job trigger/operator/sensor tests (SegmentVideoBody helper).

The callback listener reads ``[tencent_ci]`` config through Airflow's conf, which honours environment variables at
every read: this module sets them (a free loopback port, a base URL with a path prefix and a token key) before any
listener starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT" not in os.environ:
    _PORT = _free_port()
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST"] = "127.0.0.1"
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT"] = str(_PORT)
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL"] = f"http://127.0.0.1:{_PORT}/tencent-ci/cb"
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY"] = "test-callback-token-key"

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
INPUT = "input/test.mp4"


def put_input(emu: Any, key: str = INPUT) -> None:
    emu.put_object("examplebucket", key, b"not really a video", content_type="video/mp4")


def svb_request(output: str, **top: Any) -> dict[str, Any]:
    return {
        "Tag": "SegmentVideoBody",
        "Input": {"Object": INPUT},
        "Operation": {
            "SegmentVideoBody": {"Mode": "Mask"},
            "Output": {"Region": REGION, "Bucket": BUCKET, "Object": output},
        },
        **top,
    }


def submit(output: str = "out/o.mp4", **top: Any) -> str:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    return str(CIHook().submit_job(BUCKET, svb_request(output, **top))["JobId"])


def job_state(emu: Any, job_id: str) -> str | None:
    for job in emu.jobs:
        if job["JobId"] == job_id:
            return str(job["State"])
    return None


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


async def await_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


async def post(url: str, body: bytes | str, content_type: str = "application/xml", **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        data = body.encode() if isinstance(body, str) else body
        return await client.post(url, content=data, headers={"Content-Type": content_type}, **kw)


def xml_callback(job_id: str, state: str, event: str = "TaskFinish", code: str = "Success", message: str = "") -> str:
    return (
        f"<Response><EventName>{event}</EventName><JobsDetail><Code>{code}</Code><Message>{message}</Message>"
        f"<JobId>{job_id}</JobId><State>{state}</State><Tag>SegmentVideoBody</Tag></JobsDetail></Response>"
    )


def run_trigger_task(trigger: Any) -> asyncio.Task:
    """Run a trigger's first event in a task (as the triggerer would)."""
    return asyncio.get_running_loop().create_task(anext(trigger.run()))
