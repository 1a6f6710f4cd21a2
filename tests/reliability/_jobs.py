"""Job helpers: submit SegmentVideoBody jobs through CIHook, a private callback listener, run triggers in one loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from tests.reliability._support import BUCKET, FULL_BUCKET

TOKEN_KEY = "reliability-suite-callback-token-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_listener(
    monkeypatch: pytest.MonkeyPatch,
    *,
    read_timeout: float = 1.0,
    max_body_bytes: int | None = None,
    token_key: str | None = TOKEN_KEY,
) -> Iterator[Any]:
    """Install a CallbackListener on a free loopback port as the process-wide instance (what ``get_listener`` hands
    to triggers), with a short read deadline so slow clients are cut quickly. ``token_key`` makes tokens MAC'd."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    if token_key:
        monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", token_key)
    else:
        monkeypatch.delenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", raising=False)
    cl.reset_listener()
    kwargs: dict[str, Any] = {"read_timeout": read_timeout}
    if max_body_bytes is not None:
        kwargs["max_body_bytes"] = max_body_bytes
    listener = cl.CallbackListener("127.0.0.1", 0, **kwargs).start()
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(listener.port))
    # Callback URLs must point at this listener whatever another test module exported before (in a full run,
    # tests/triggers/helpers.py sets a base URL for its own listener when it is imported at collection).
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", f"http://127.0.0.1:{listener.port}")
    monkeypatch.setattr(cl, "_INSTANCE", listener)
    try:
        yield listener
    finally:
        listener.stop()
        monkeypatch.setattr(cl, "_INSTANCE", None)


def svb_request(
    source_key: str, output_key: str, region: str, callback: str | None = None, fmt: str = "XML"
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "Tag": "SegmentVideoBody",
        "Input": {"Object": source_key},
        "Operation": {
            "SegmentVideoBody": {"Mode": "Mask"},
            "Output": {"Region": region, "Bucket": FULL_BUCKET, "Object": output_key},
        },
    }
    if callback:
        request["CallBack"] = callback
        request["CallBackFormat"] = fmt
    return request


def submit(
    conn_id: str, emu: Any, source_key: str, output_key: str, callback: str | None = None, fmt: str = "XML"
) -> str:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook(tencentcloud_conn_id=conn_id)
    detail = hook.submit_job(BUCKET, svb_request(source_key, output_key, emu.region, callback, fmt))
    return str(detail["JobId"])


async def first_event(trigger: Any, timeout: float) -> list[Any]:
    """Run a trigger's ``run()`` until its first event (a task trigger yields one) or ``timeout``."""
    events: list[Any] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)
            return

    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(consume(), timeout)
    return events


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
