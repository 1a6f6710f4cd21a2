"""The two callback receivers as targets of one hostile-input suite.

- ``listener``: the in-triggerer listener (h11 on asyncio, ``triggers/callbacks/server.py``) in this process, as
  the process-wide instance the triggers use (``_jobs.private_listener``);
- ``api_server``: the API-server receiver app (``plugins/callback_receiver.py``) served by uvicorn the way
  ``airflow api-server`` serves it (``_receiver_server.py``), in its own process, publishing to a private
  redis-server; the triggers of this process receive through the relay subscriber, as in a triggerer.

A test takes a :class:`Target` and sends to ``target.port`` / ``target.path(token)``; ``callback_url()`` (what
the emulator calls) points at the target too. Memory and descriptors are the serving process's.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from tests.reliability import _jobs

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("listener", "api_server")
LABELS = {"listener": "callback listener", "api_server": "API-server receiver (uvicorn)"}  # figures' names


@dataclass
class Target:
    name: str
    port: int
    prefix: str  # the path before ``/<token>``
    pid: int  # the serving process
    # Whether the server cuts a request whose head never completes (the listener's header deadline; uvicorn has
    # none: README "Production callbacks" puts the API server behind an ingress that has one).
    header_deadline: bool
    serving: Callable[[], bool]

    def path(self, token: str) -> str:
        return f"{self.prefix}/{token}"

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def peak_rss_kib(self) -> int:
        return self._status_kib("VmHWM")

    def _status_kib(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} for process {self.pid}")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@contextmanager
def listener_target(
    monkeypatch: pytest.MonkeyPatch, *, body_timeout: float, max_body_bytes: int | None = None
) -> Iterator[Target]:
    with _jobs.private_listener(monkeypatch, read_timeout=body_timeout, max_body_bytes=max_body_bytes) as listener:
        yield Target("listener", listener.port, "", os.getpid(), True, lambda: listener.running)


@contextmanager
def api_server_target(
    monkeypatch: pytest.MonkeyPatch,
    *,
    body_timeout: float,
    max_body_bytes: int | None = None,
    fd_limit: int | None = None,
) -> Iterator[Target]:
    """``fd_limit``: the server process's RLIMIT_NOFILE (default: this process's)."""
    from airflow_provider_tencent_ci.plugins.callback_receiver import URL_PREFIX
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers import callback_relay
    from tests.production.deployment import RedisServer, require_packages

    require_packages()
    redis_server = RedisServer()
    redis_server.start()
    port = _jobs.free_port()
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", _jobs.TOKEN_KEY)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", redis_server.url)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", f"http://127.0.0.1:{port}{URL_PREFIX}/callbacks")
    # This process is the triggerer: its triggers start the relay subscriber and a listener of their own.
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(_jobs.free_port()))
    # An earlier test's trigger without a relay made this process remember "no relay" (the config is read once).
    monkeypatch.setattr(callback_relay, "_SAID_PROCESS_LOCAL", False)
    cl.reset_listener()
    callback_relay.stop_subscriber()
    limits = [str(max_body_bytes or cl.MAX_BODY_BYTES), str(body_timeout)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._receiver_server", str(port), *limits],
            cwd=str(REPO),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=None
            if fd_limit is None
            else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit)),
        )
        try:
            _wait_for_port(port, proc, log)
            yield Target("api_server", port, f"{URL_PREFIX}/callbacks", proc.pid, False, lambda: proc.poll() is None)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            cl.reset_listener()
            callback_relay.stop_subscriber()
            redis_server.remove()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    deadline = time.monotonic() + 90  # it imports Airflow (the plugin base class): seconds on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the receiver exited {proc.returncode}: {log.read()[-2000:]!r}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the receiver did not listen on port {port}")


def target(
    name: str, monkeypatch: pytest.MonkeyPatch, *, body_timeout: float, max_body_bytes: int | None = None
) -> AbstractContextManager[Target]:
    start = {"listener": listener_target, "api_server": api_server_target}[name]
    return start(monkeypatch, body_timeout=body_timeout, max_body_bytes=max_body_bytes)
