"""The CI callback receiver on the Airflow API server: ``POST <api server>/tencent-ci/callbacks/<token>``.

CI calls the endpoint a deployment already exposes (with TLS) instead of an ingress to every triggerer. The
receiver checks the token (``verify_token``: the HMAC of the nonce, so forged tokens are refused without any
state), caps the body size (Content-Length first, then the streamed count, so chunked bodies are capped too) and
the time to receive it, parses it safely (``parse_callback``: defusedxml / JSON; malformed bodies are 400), and
hands the raw callback to the shared relay (``triggers/callback_relay.py``), where the triggerer holding the
token picks it up. It answers 200 only once the relay has stored the callback, and 503 otherwise (no relay
configured, Redis unreachable), so CI retries rather than losing it.

The app is mounted through Airflow 3's plugin ``fastapi_apps`` (``airflow/api_fastapi/app.py`` ``init_plugins``
mounts each ``{"app", "url_prefix"}``, the same in 3.1 and 3.3); it is outside Airflow's auth, as CI holds no
Airflow credentials: the token in the path is the credential. Set ``[tencent_ci] callback_base_url`` to
``https://<api server>/tencent-ci/callbacks``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callback_listener import (
    MAX_BODY_BYTES,
    CallbackParseError,
    parse_callback,
    verify_token,
)

try:
    from airflow.plugins_manager import AirflowPlugin
except ImportError:  # pragma: no cover - Airflow without the plugins manager
    AirflowPlugin = object  # type: ignore[assignment,misc]

log = logging.getLogger(__name__)

URL_PREFIX = "/tencent-ci"
CALLBACK_PATH = "/callbacks/{token}"
# Whole-body deadline: a JobsDetail is a few KB, so a slow body is a client that is not CI (as in the listener).
RECEIVE_TIMEOUT_SECONDS = 10.0


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, "bad Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise _Refused(413, "body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Refused(413, "body too large")
        chunks.append(chunk)
    return b"".join(chunks)


class _RelayHolder:
    """The relay client of this API-server worker, created on first use (its config may name a connection)."""

    def __init__(self) -> None:
        self.relay: callback_relay.CallbackRelay | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> callback_relay.CallbackRelay | None:
        if self.relay is None:
            async with self._lock:
                if self.relay is None:
                    url = await run_in_threadpool(callback_relay.relay_url)  # a connection lookup may hit the DB
                    if url:
                        self.relay = callback_relay.CallbackRelay(url)
        return self.relay


def create_app() -> FastAPI:
    app = FastAPI(title="Tencent CI callback receiver", docs_url=None, redoc_url=None, openapi_url=None)
    relays = _RelayHolder()

    @app.post(CALLBACK_PATH)
    async def receive(token: str, request: Request) -> PlainTextResponse:
        try:
            if not verify_token(token):
                raise _Refused(404, "unknown token")
            try:
                body = await asyncio.wait_for(_read_body(request), RECEIVE_TIMEOUT_SECONDS)
            except asyncio.TimeoutError:
                raise _Refused(408, "body not received in time") from None
            content_type = request.headers.get("content-type", "")
            try:
                parse_callback(body, content_type)
            except CallbackParseError as err:
                log.warning("CI callback receiver: malformed callback refused: %s", err)
                raise _Refused(400, "malformed callback") from None
            try:
                relay = await relays.get()
            except Exception:  # e.g. the configured connection does not exist
                log.exception("CI callback receiver: cannot set up the callback relay; answering 503")
                raise _Refused(503, "callback relay misconfigured") from None
            if relay is None:
                log.error("CI callback receiver: no [tencent_ci] callback_relay_conn_id/url; answering 503")
                raise _Refused(503, "no callback relay configured")
            try:
                await relay.publish(token, body, content_type)
            except callback_relay.CallbackRelayError as err:
                log.warning("CI callback receiver: %s; answering 503 so that CI retries", err)
                raise _Refused(503, "callback relay unavailable") from None
        except _Refused as refused:
            return PlainTextResponse(refused.reason, status_code=refused.status)
        return PlainTextResponse("OK")

    return app


class TencentCICallbackReceiverPlugin(AirflowPlugin):
    name = "tencent_ci_callback_receiver"
    fastapi_apps: list[dict[str, Any]] = [
        {"name": "tencent-ci-callback-receiver", "app": create_app(), "url_prefix": URL_PREFIX}
    ]
