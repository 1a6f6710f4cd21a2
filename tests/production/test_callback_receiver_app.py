"""The API-server receiver app on a real uvicorn server on loopback: the cases the full deployment test leaves out.

(tests/production/test_production_deployment.py drives the same app mounted in the real Airflow API server.)
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_tencent_ci.plugins import callback_receiver
from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callback_listener import new_nonce, token_for_nonce
from airflow_provider_tencent_ci.triggers.callbacks.core import Limits
from tests.production.deployment import RedisServer, require_packages
from tests.services.airflow_services import free_port

CALLBACK = b"<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>a1</JobId><State>Success</State>"
CALLBACK += b"</JobsDetail></Response>"


@pytest.fixture(autouse=True)
def token_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", "receiver-app-test-key")


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start a fresh receiver app (its relay client is created on first use, from the config at that time)."""
    import uvicorn

    servers: list[tuple[Any, threading.Thread]] = []

    def start(limits: Limits = Limits()) -> str:
        port = free_port()
        app = callback_receiver.create_app(limits)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the receiver app did not start")
            threading.Event().wait(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def _post(base: str, token: str, body: bytes = CALLBACK) -> int:
    import httpx

    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        return client.post(f"/callbacks/{token}", content=body, headers={"Content-Type": "application/xml"}).status_code


def test_without_a_relay_the_receiver_answers_503_so_ci_retries(serve: Any) -> None:
    assert _post(serve(), token_for_nonce(new_nonce())) == 503


def test_a_relay_connection_that_does_not_exist_answers_503(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID", "no_such_connection_for_the_relay")
    assert _post(serve(), token_for_nonce(new_nonce())) == 503


def test_a_body_slower_than_the_time_cap_is_refused(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    require_packages()
    redis_server = RedisServer()
    redis_server.start()
    try:
        monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", redis_server.url)
        base = serve(Limits(body_timeout=0.5))
        token = token_for_nonce(new_nonce())
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = f"POST /callbacks/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(CALLBACK)}\r\n\r\n"
            sock.sendall(head.encode() + CALLBACK[:10])  # ...and the rest never comes
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert _post(base, token) == 200  # a complete one still goes through

        async def pending() -> list[callback_relay.RelayedCallback]:
            relay = callback_relay.CallbackRelay(redis_server.url)
            try:
                return await relay.take_pending(token)
            finally:
                await relay.aclose()

        assert asyncio.run(pending()) == [callback_relay.RelayedCallback(token, CALLBACK, "application/xml")]
    finally:
        redis_server.remove()
