"""Helpers for the hook tests: connections to the emulator with fast retries, images, local credential servers.

Everything runs over real HTTP: the emulator (pytest plugin fixtures ``tencent_emulator``/``tencent_conn``), and
for the credential chain two tiny loopback servers standing in for what the emulator does not emulate (the CVM
metadata service and STS AssumeRole). They hand out the emulator's STS credential, which the emulator verifies.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

FAST_RETRY = {"max_attempts": 3, "retry_base_delay": 0.01, "retry_max_delay": 0.02, "timeout": 10}
BUCKET = "examplebucket"


def set_conn(
    monkeypatch: pytest.MonkeyPatch,
    conn_id: str,
    login: str | None,
    password: str | None,
    extras: dict[str, Any],
) -> str:
    value = {"conn_type": "tencentcloud", "login": login, "password": password, "extra": extras}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    return conn_id


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    """The reset emulator (AIRFLOW_CONN_TENCENTCLOUD_DEFAULT already points at it)."""
    return tencent_conn


@pytest.fixture
def fast_conn(emu: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default credential with short retry delays and 3 attempts."""
    cred = emu.credential()
    return set_conn(monkeypatch, "tc_fast", cred.secret_id, cred.secret_key, {**emu.connection_extras(), **FAST_RETRY})


@pytest.fixture
def png_bytes() -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (64, 48), (200, 100, 50))
    for x in range(20, 44):
        for y in range(10, 38):
            img.putpixel((x, y), (30, 30, 30))
    img.save(buf, "PNG")
    return buf.getvalue()


class _JsonServer:
    """A loopback HTTP server answering every GET/POST with ``handler(method, path, body) -> (status, obj|str)``."""

    def __init__(self, handler: Any) -> None:
        outer = self
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []

        class H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path, body, dict(self.headers)))
                status, payload = handler(self.command, self.path, body)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def json_server() -> Iterator[Any]:
    servers: list[_JsonServer] = []

    def start(handler: Any) -> _JsonServer:
        srv = _JsonServer(handler)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
