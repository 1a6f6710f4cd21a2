"""The listener's own limits: idle connections cannot starve the process, strict framing and paths, deep nesting
answered 400 without a traceback, a warning when CI would be told a loopback address, and ``ensure_listener``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import _jobs, _targets
from tests.reliability.test_callback_listener_hostile import forged_xml, raw_post, raw_request

REPO = Path(__file__).resolve().parents[2]
IDLE_CLIENTS = 300
LISTENER_LOGGERS = "airflow_provider_tencent_ci.triggers"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _post_from(source_ip: str, port: int, path: str, body: bytes, timeout: float = 10.0) -> int:
    """A POST from another loopback address (Linux routes all of 127/8 to lo): another client as the server sees it."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        sock.bind((source_ip, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        line = sock.makefile("rb").readline()
    return int(line.split()[1]) if line else 0


def test_idle_connections_do_not_starve_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    """300 idle sockets (the red-team run: 256 descriptors, 300 idle sockets, no socket or file could be opened
    any more, about 15,000 accept-error lines). With a descriptor limit that leaves room for the listener's cap
    and little more, a valid callback is still served, the process can still open a file and a socket, and the
    log has a few lines about it."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    caplog.set_level(logging.INFO, logger=LISTENER_LOGGERS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with _jobs.private_listener(monkeypatch) as listener:
        cap = listener.receiver.max_connections
        assert cap < IDLE_CLIENTS
        idle = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._idle_clients", str(listener.port), str(IDLE_CLIENTS)],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            limit = _open_fds() + cap + 48
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
            try:
                assert idle.stdout is not None
                assert idle.stdout.readline().decode().strip() == f"connected {IDLE_CLIENTS}"
                assert _jobs.wait_until(lambda: listener.receiver.peak_connections >= cap, 10)
                # Another client (CI) still gets its callback through while the idle sockets are open.
                status = _post_from(
                    "127.0.0.2", listener.port, f"/{cl.token_for_nonce(cl.new_nonce())}", forged_xml("a" + "3" * 32)
                )
                with tempfile.TemporaryFile() as fh, socket.socket() as sock:
                    fh.write(b"the process can still open files")
                    sock.bind(("127.0.0.1", 0))
                fds_during = _open_fds()
            finally:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        finally:
            idle.stdin.close()  # type: ignore[union-attr]
            idle.wait(10)
        peak = listener.receiver.peak_connections
        refused = listener.receiver.refused_connections
    lines = [r for r in caplog.records if r.name.startswith(LISTENER_LOGGERS) and r.levelno >= logging.WARNING]
    figures.record(
        "callback listener: 300 idle connections",
        connection_cap=cap,
        peak_connections=peak,
        idle_closed_early=refused,
        valid_callback_status=status,
        fds_during=fds_during,
        fd_limit=limit,
        log_lines=len(lines),
    )
    assert status == 200
    assert peak <= cap
    assert refused > 0  # idle sockets beyond the per-client allowance were closed early
    assert len(lines) <= 5, [r.getMessage() for r in lines]


def test_framing_paths_and_formats_over_http(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    caplog.set_level(logging.INFO, logger=LISTENER_LOGGERS)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", _jobs.TOKEN_KEY)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "https://callbacks.example.com/tencent-ci/cb")
    listener = cl.CallbackListener("127.0.0.1", 0, read_timeout=2.0).start()
    try:
        port, token = listener.port, cl.token_for_nonce(cl.new_nonce())
        good = forged_xml("a" + "4" * 32)
        deep_xml = b"<Response><JobsDetail>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</JobsDetail></Response>"
        deep_json = b'{"JobsDetail": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        json_body = json.dumps(
            {"EventName": "TaskFinish", "JobsDetail": {"JobId": "a" + "5" * 32, "State": "Success"}}
        ).encode()

        async def scenario() -> dict[str, int]:
            n = len(good)
            return {
                "base_path": await raw_post(port, f"/tencent-ci/cb/{token}", good),
                "bare": await raw_post(port, f"/{token}", good),
                "other_prefix": await raw_post(port, f"/anything/{token}", good),
                "prefix_of_base": await raw_post(port, f"/tencent-ci/{token}", good),
                "differing_lengths": await raw_post(port, f"/{token}", good, extra_headers="Content-Length: 5\r\n"),
                "plus_length": await _plus_length(port, token, good),
                "same_length_twice": await raw_post(port, f"/{token}", good, extra_headers=f"Content-Length: {n}\r\n"),
                "deep_xml": await raw_post(port, f"/{token}", deep_xml),
                "deep_json": await raw_post(port, f"/{token}", deep_json, "application/json"),
                "json_as_xml": await raw_post(port, f"/{token}", json_body, "application/xml"),
                "xml_as_json": await raw_post(port, f"/{token}", good, "application/json"),
                "no_host": await _no_host(port, token, good),
            }

        statuses = asyncio.run(scenario())
    finally:
        listener.stop()
    assert statuses == {
        "base_path": 200,
        "bare": 200,
        "other_prefix": 404,
        "prefix_of_base": 404,
        "differing_lengths": 400,
        "plus_length": 400,
        "same_length_twice": 200,
        "deep_xml": 400,
        "deep_json": 400,
        "json_as_xml": 200,
        "xml_as_json": 200,
        "no_host": 400,
    }
    assert not [r for r in caplog.records if r.exc_info], "a refused request logged a traceback"
    assert listener.responses.get(500, 0) == 0


async def _plus_length(port: int, token: str, body: bytes) -> int:
    return await raw_request(
        port, f"POST /{token} HTTP/1.1\r\nHost: x\r\nContent-Length: +{len(body)}\r\n\r\n".encode() + body
    )


async def _no_host(port: int, token: str, body: bytes) -> int:
    return await raw_request(port, f"POST /{token} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


def test_wildcard_host_without_base_url_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_tencent_ci.triggers.callbacks import tokens

    caplog.set_level(logging.WARNING, logger=LISTENER_LOGGERS)
    monkeypatch.setattr(tokens, "_warned_wildcard", False)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "0.0.0.0")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", "8799")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "")
    assert [tokens.callback_base_url() for _ in range(3)] == ["http://127.0.0.1:8799"] * 3
    warnings = [r.getMessage() for r in caplog.records if "callback_base_url" in r.getMessage()]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0] and "127.0.0.1" in warnings[0]
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setattr(tokens, "_warned_wildcard", False)
    tokens.callback_base_url()
    assert len([r for r in caplog.records if "callback_base_url" in r.getMessage()]) == 1


def test_ensure_listener_is_idempotent_and_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(_jobs.free_port()))
    cl.reset_listener()
    try:
        monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", "")
        monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "")
        assert asyncio.run(cl.ensure_listener()) is None
        assert cl._INSTANCE is None  # nothing could be accepted without a key: no port is opened

        monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", _jobs.TOKEN_KEY)

        async def many() -> list[Any]:
            return list(await asyncio.gather(*(cl.ensure_listener() for _ in range(8))))

        first = asyncio.run(many())
        again = asyncio.run(cl.ensure_listener())  # another loop (dag.test() runs each trigger in its own)
        assert first[0] is not None and first[0].running
        assert all(listener is first[0] for listener in first) and again is first[0]
    finally:
        cl.reset_listener()


def test_a_listener_whose_port_is_taken_binds_once_it_is_freed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, figures: Any
) -> None:
    """Issue 13: a triggerer whose port is held (e.g. by a triggerer still shutting down) retries the bind in the
    background with backoff, logs one warning for the whole streak, and serves once the port is free, without a
    restart; a trigger that registered meanwhile gets the callback."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers import callback_relay
    from airflow_provider_tencent_ci.triggers._asyncio import Mailbox

    caplog.set_level(logging.INFO, logger=LISTENER_LOGGERS)
    monkeypatch.setattr(cl, "BIND_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(cl, "BIND_RETRY_MAX_SECONDS", 0.2)
    occupant = socket.create_server(("127.0.0.1", 0))
    port = occupant.getsockname()[1]
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", _jobs.TOKEN_KEY)
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_URL", "")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_RELAY_CONN_ID", "")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT", str(port))
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(callback_relay, "_SAID_PROCESS_LOCAL", False)  # restored afterwards: "no relay" is remembered
    cl.reset_listener()
    job_id = "a" + "6" * 32

    def bind_warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "cannot bind" in r.getMessage()]

    async def scenario() -> dict[str, Any]:
        listener = await cl.ensure_listener()
        assert listener is not None and not listener.running
        token = cl.token_for_nonce(cl.new_nonce())
        mailbox = Mailbox()
        registration = await listener.listen(token, mailbox)  # a trigger starting while the port is taken
        try:
            await asyncio.sleep(1.0)  # several retries at 0.05 .. 0.2 s
            taken = {"failures": listener.bind_failures, "warnings": len(bind_warnings()), "up": listener.running}
            assert await cl.ensure_listener() is listener  # later triggers get the same, retrying listener
            occupant.close()
            for _ in range(200):
                if listener.running:
                    break
                await asyncio.sleep(0.05)
            status = await raw_post(port, f"/{token}", forged_xml(job_id))
            item = await mailbox.get(10)
            return {**taken, "status": status, "jobs": item[1].job_ids() if item else None, "same": listener}
        finally:
            registration.close()

    try:
        result = asyncio.run(scenario())
        serving = result["same"] is cl._INSTANCE and cl._INSTANCE.running
    finally:
        occupant.close()
        cl.reset_listener()
    figures.record(
        "callback listener: port taken, then freed",
        failed_binds_while_taken=result["failures"],
        bind_warnings=len(bind_warnings()),
        callback_status_after_bind=result["status"],
    )
    assert not result["up"] and result["failures"] >= 4, result  # retried, and not serving while taken
    assert result["warnings"] == 1 and len(bind_warnings()) == 1  # one line for the whole streak
    assert any("bound 127.0.0.1" in r.getMessage() for r in caplog.records)
    assert serving and result["status"] == 200 and result["jobs"] == [job_id]


HELD_HEADS = 300


@pytest.mark.parametrize("target_name", _targets.TARGETS)
def test_held_request_heads_do_not_stop_callbacks(
    target_name: str, monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    """300 connections that each sent the start of a request head and never finish it (slowloris at rest, from
    another process). The listener cuts them at its header deadline; uvicorn (the API server) has no header
    deadline and holds them until the client leaves. Either way CI's callbacks from another address are answered
    200 meanwhile, memory stays small, and the descriptors are given back when the clients leave."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    with _targets.target(target_name, monkeypatch, body_timeout=1.0) as target:
        fds_before, rss_before = target.open_fds(), target.rss_kib()
        head = f"POST {target.path('x')} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
        holders = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._idle_clients", str(target.port), str(HELD_HEADS), head],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert holders.stdout is not None
            assert holders.stdout.readline().decode().strip() == f"connected {HELD_HEADS}"
            time.sleep(2.0)  # past the listener's header deadline (1 s here)
            fds_held, rss_held = target.open_fds(), target.rss_kib()
            good = [
                _post_from("127.0.0.2", target.port, target.path(cl.token_for_nonce(cl.new_nonce())), forged_xml(job))
                for job in ("a" + f"{n:032d}" for n in range(20))
            ]
        finally:
            holders.stdin.close()  # type: ignore[union-attr]
            holders.wait(10)
        assert _jobs.wait_until(lambda: target.open_fds() <= fds_before + 2, 10)
        fds_after = target.open_fds()
        serving = target.serving()
    growth_mib = (rss_held - rss_before) / 1024
    figures.record(
        f"{_targets.LABELS[target_name]}: {HELD_HEADS} held request heads",
        good_callbacks_200=good.count(200),
        fds_before=fds_before,
        fds_while_held=fds_held,
        fds_after=fds_after,
        rss_growth_mib=round(growth_mib, 1),
    )
    assert good == [200] * 20
    assert serving
    assert growth_mib < 20, growth_mib
    if target.header_deadline:  # the listener: at most its connection cap open, each cut at the header deadline
        assert fds_held <= fds_before + cl.MAX_CONNECTIONS + 10


def test_the_api_server_at_its_descriptor_limit_refuses_callbacks_then_recovers(
    monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    """Why the API server belongs behind an ingress with a header timeout: uvicorn holds every unfinished head, and
    no cap of the receiver app can act before a head is complete. Once held heads take all of the process's
    descriptors (a limit of 256 here), new connections, CI's callbacks included, are refused (CI retries; the
    fallback poll finds the job); when the clients leave, callbacks are served again without a restart."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    limit = 256
    with _targets.api_server_target(monkeypatch, body_timeout=1.0, fd_limit=limit) as target:
        head = f"POST {target.path('x')} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n"
        holders = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._idle_clients", str(target.port), str(limit + 44), head],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

        def callback() -> int:
            try:
                path = target.path(cl.token_for_nonce(cl.new_nonce()))
                return _post_from("127.0.0.2", target.port, path, forged_xml("a" + "7" * 32), timeout=5)
            except OSError:  # reset, or no answer in time
                return 0

        try:
            assert holders.stdout is not None
            assert holders.stdout.readline().decode().strip() == f"connected {limit + 44}"
            assert _jobs.wait_until(lambda: target.open_fds() >= limit, 10)
            during = callback()
        finally:
            holders.stdin.close()  # type: ignore[union-attr]
            holders.wait(10)
        assert _jobs.wait_until(lambda: target.open_fds() < 50, 10)
        after = callback()
        serving = target.serving()
    figures.record(
        f"{_targets.LABELS['api_server']}: held heads at the descriptor limit",
        fd_limit=limit,
        held_heads=limit + 44,
        callback_status_while_exhausted=during,
        callback_status_after_clients_left=after,
    )
    assert during != 200  # documented in README/RELIABILITY; if uvicorn gains a header timeout, update them
    assert after == 200 and serving


def test_the_api_server_receiver_reads_a_bounded_number_of_bodies_at_once(
    monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    """Clients each send all but the last byte of a body at the size cap and stall. uvicorn would hand every one to
    the app, each holding up to the cap until the body deadline; the receiver reads at most ``MAX_IN_FLIGHT`` at
    once (408 at the deadline) and answers the rest 503 before reading them (CI retries)."""
    from airflow_provider_tencent_ci.plugins.callback_receiver import MAX_IN_FLIGHT
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    cap, clients = 256 * 1024, MAX_IN_FLIGHT + 32
    with _targets.api_server_target(monkeypatch, body_timeout=3.0, max_body_bytes=cap) as target:
        rss_before = target.rss_kib()
        path = target.path(cl.token_for_nonce(cl.new_nonce()))
        request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {cap}\r\n\r\n".encode() + b"x" * (cap - 1)

        async def scenario() -> tuple[list[int], int]:
            streams = [await asyncio.open_connection("127.0.0.1", target.port) for _ in range(clients)]
            try:
                for _, writer in streams:
                    writer.write(request)
                await asyncio.gather(*(writer.drain() for _, writer in streams))
                await asyncio.sleep(1.0)  # all heads in, the deadline (3 s) not yet reached
                peak = target.rss_kib()
                lines = await asyncio.gather(*(asyncio.wait_for(reader.readline(), 20) for reader, _ in streams))
                return [int(line.split()[1]) if line else 0 for line in lines], peak
            finally:
                for _, writer in streams:
                    writer.close()

        statuses, rss_peak = asyncio.run(scenario())
        serving = target.serving()
    growth_mib = (rss_peak - rss_before) / 1024
    figures.record(
        f"{_targets.LABELS['api_server']}: {clients} stalled bodies at the size cap",
        size_cap_kib=cap // 1024,
        max_in_flight=MAX_IN_FLIGHT,
        answered_408=statuses.count(408),
        answered_503=statuses.count(503),
        rss_growth_mib=round(growth_mib, 1),
    )
    assert set(statuses) <= {408, 503}, statuses
    assert statuses.count(503) > 0 and statuses.count(408) <= MAX_IN_FLIGHT  # all stall past the heads
    assert serving
    assert growth_mib < MAX_IN_FLIGHT * cap / 2**20 + 32, growth_mib


@pytest.mark.parametrize("target_name", _targets.TARGETS)
def test_an_oversized_request_head(target_name: str, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    """16 MiB of header lines. The listener refuses a head over 16 KiB (431, h11's limit); uvicorn with httptools
    (as the API server runs it) has no head size limit: it reads all of it into memory before the app can answer,
    which is why the API server belongs behind an ingress with a header size limit (README)."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl

    with _targets.target(target_name, monkeypatch, body_timeout=1.0) as target:
        path = target.path(cl.token_for_nonce(cl.new_nonce()))
        line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + line * (16 * 1024) + b"Content-Length: 0\r\n\r\n"
        peak_before = target.peak_rss_kib()  # (the listener's process is this one: the head is already built)

        async def send() -> int:
            try:
                return await raw_request(target.port, head, timeout=60)
            except OSError:  # reset while still sending: refused early
                return 0

        status = asyncio.run(send())
        peak_growth_mib = (target.peak_rss_kib() - peak_before) / 1024
        serving = target.serving()
    figures.record(
        f"{_targets.LABELS[target_name]}: a 16 MiB request head",
        status=status,
        peak_rss_growth_mib=round(peak_growth_mib, 1),
    )
    assert serving
    if target_name == "listener":
        assert status in (431, 0)
    else:  # read whole, then refused by the receiver (an empty body is not a callback)
        assert status == 400 and peak_growth_mib > 8  # documented in README/RELIABILITY: update them if it changes
