"""The CI callback receiver on the Airflow API server: ``POST <api server>/tencent-ci/callbacks/<token>``.

CI calls the endpoint a deployment already exposes (with TLS) instead of an ingress to every triggerer. The
request goes through the same callback core as the in-triggerer listener (``triggers/callbacks/core.py``
``handle_callback``: the token's MAC, Content-Length framing with chunked bodies refused, the size cap checked
before reading, the whole-body deadline ``READ_TIMEOUT_SECONDS``, safe parsing), at most ``MAX_IN_FLIGHT``
requests at once per worker (503 beyond, before reading), and a valid callback is handed to the shared relay
(``triggers/callback_relay.py``), where the triggerer holding the token picks it up. It answers 200 only once the
relay has stored the callback, and 503 otherwise (no relay configured, Redis unreachable), so CI retries rather
than losing it.

What no app can cap is the request head: uvicorn (as ``airflow api-server`` runs it) has no header deadline and,
with httptools, no header size limit, so the API server belongs behind the ingress that deployments already use
for TLS, with a header timeout and size limit (README "Production callbacks", RELIABILITY.md).

The app is mounted through Airflow 3's plugin ``fastapi_apps`` (``airflow/api_fastapi/app.py`` ``init_plugins``
mounts each ``{"app", "url_prefix"}``, the same in 3.1 and 3.3); it is outside Airflow's auth, as CI holds no
Airflow credentials: the token in the path is the credential. Set ``[tencent_ci] callback_base_url`` to
``https://<api server>/tencent-ci/callbacks``.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callbacks.core import (
    ClientGone,
    Limits,
    RateLimitedLog,
    handle_callback,
    publish_or_503,
)
from airflow_provider_tencent_ci.triggers.callbacks.parsing import CallbackMessage
from airflow_provider_tencent_ci.triggers.callbacks.server import MAX_CONNECTIONS

try:
    from airflow.plugins_manager import AirflowPlugin
except ImportError:  # pragma: no cover - Airflow without the plugins manager
    AirflowPlugin = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)
_busy = RateLimitedLog(log)

# Requests read at once by one API-server worker; beyond, 503 before reading (CI retries). uvicorn bounds neither
# connections nor requests (Airflow sets no ``limit_concurrency``), and each request may hold up to the size cap
# for up to the body deadline: this keeps the worst case at the listener's (``MAX_CONNECTIONS`` x the size cap).
MAX_IN_FLIGHT = MAX_CONNECTIONS

URL_PREFIX = "/tencent-ci"
CALLBACK_PATH = "/callbacks/{token}"


class RelaySink:
    """Where this API-server worker puts valid callbacks: the relay, whose client is created on first use (its
    config may name a connection); 503 when there is none or it cannot be set up."""

    def __init__(self) -> None:
        self.relay: callback_relay.CallbackRelay | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> callback_relay.CallbackRelay | None:
        if self.relay is None:
            async with self._lock:
                if self.relay is None:
                    url = await run_in_threadpool(callback_relay.relay_url)  # a connection lookup may hit the DB
                    if url:
                        self.relay = callback_relay.CallbackRelay(url)
        return self.relay

    async def accept(self, token: str, body: bytes, content_type: str, message: CallbackMessage) -> int:
        try:
            relay = await self._get()
        except Exception:  # e.g. the configured connection does not exist
            log.exception("CI callback receiver: cannot set up the callback relay; answering 503")
            return 503
        if relay is None:
            log.error("CI callback receiver: no [tencent_ci] callback_relay_conn_id/url; answering 503")
            return 503
        return await publish_or_503(relay, token, body, content_type)


def create_app(limits: Limits = Limits(), max_in_flight: int = MAX_IN_FLIGHT) -> FastAPI:
    app = FastAPI(title="Tencent CI callback receiver", docs_url=None, redoc_url=None, openapi_url=None)
    sink = RelaySink()
    in_flight = 0  # requests of this worker between their head and their answer (one event loop: no lock)

    @app.post(CALLBACK_PATH)
    async def receive(token: str, request: Request) -> PlainTextResponse:
        nonlocal in_flight
        if in_flight >= max_in_flight:
            _busy.warning("CI callback receiver: %d requests in progress; answering 503 so that CI retries", in_flight)
            return PlainTextResponse(HTTPStatus(503).phrase, status_code=503)
        in_flight += 1
        try:
            return await _receive(token, request)
        finally:
            in_flight -= 1

    async def _receive(token: str, request: Request) -> PlainTextResponse:
        chunks = request.stream()

        async def read() -> bytes:
            try:
                return await anext(chunks)
            except StopAsyncIteration:
                return b""
            except ClientDisconnect:
                raise ClientGone() from None

        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.scope["headers"]]
        try:
            # The route matched one path segment: the core sees the token as ``/<token>``.
            status = await handle_callback(sink, request.method, f"/{token}", headers, read, limits=limits)
        except ClientGone:
            status = 400  # nobody reads it
        return PlainTextResponse(HTTPStatus(status).phrase, status_code=status)

    return app


class TencentCICallbackReceiverPlugin(AirflowPlugin):
    name = "tencent_ci_callback_receiver"
    fastapi_apps: list[dict[str, Any]] = [
        {"name": "tencent-ci-callback-receiver", "app": create_app(), "url_prefix": URL_PREFIX}
    ]
