"""The Emulator facade, HTTP inspection, stats, persistence, the CLI and the pytest fixtures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from qcloud_cos import CosServiceError

from airflow_provider_tencent_ci.emulator import DEFAULT_SECRET_ID, Emulator
from airflow_provider_tencent_ci.emulator.app import parse_query, split_target

from .conftest import BUCKET

HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"


def test_connection_helpers(emu: Emulator) -> None:
    extras = emu.connection_extras()
    assert extras == {
        "region": "ap-guangzhou",
        "appid": "1250000000",
        "use_https": False,
        "proxy": emu.url,
        "console_base_url": f"{emu.url}/_emulator/view/{emu.control_token}",
    }
    name, value = emu.airflow_conn_env("my_conn")
    assert name == "AIRFLOW_CONN_MY_CONN"
    conn = json.loads(value)
    assert conn["conn_type"] == "tencentcloud" and conn["login"] == DEFAULT_SECRET_ID and conn["extra"] == extras
    sts = json.loads(emu.airflow_conn_env(sts=True)[1])
    assert sts["extra"]["token"] == emu.credential(sts=True).token
    uri = emu.connection_uri()
    assert uri.startswith(f"tencentcloud://{DEFAULT_SECRET_ID}:") and "proxy=http%3A%2F%2F127.0.0.1" in uri


def test_tencent_conn_fixture_exports_connection(tencent_conn: Emulator) -> None:
    value = json.loads(os.environ["AIRFLOW_CONN_TENCENTCLOUD_DEFAULT"])
    assert value["extra"]["proxy"] == tencent_conn.url
    assert "127.0.0.1" in os.environ["NO_PROXY"].split(",")
    assert os.environ["TENCENT_CI_EMULATOR_URL"] == tencent_conn.url
    assert os.environ["TENCENT_CI_EMULATOR_TOKEN"] == tencent_conn.control_token


def test_airflow_reads_the_exported_connection(tencent_conn: Emulator) -> None:
    from airflow.sdk import Connection

    conn = Connection.get("tencentcloud_default")
    assert conn.login == DEFAULT_SECRET_ID
    assert conn.extra_dejson["proxy"] == tencent_conn.url


def test_stats_and_inspection_endpoints(emu: Emulator, cos: Any) -> None:
    cos.put_object(Bucket=BUCKET, Key="a", Body=b"1")
    cos.put_object(Bucket=BUCKET, Key="b", Body=b"2")
    cos.get_object(Bucket=BUCKET, Key="a")
    other = emu.create_bucket("other")
    cos.put_object(Bucket=other, Key="c", Body=b"3")
    with pytest.raises(CosServiceError):
        cos.get_object(Bucket=BUCKET, Key="missing")

    s = emu.stats
    assert s.count() == 5
    assert s.count(operation="PutObject") == 3
    assert s.count(operation="PutObject", bucket=BUCKET) == 2
    assert s.count(operation="GetObject", ok=True) == 1
    assert s.count(operation="GetObject", ok=False) == 1
    assert s.errors(code="NoSuchKey") == 1

    # the control API on the emulator's own host, with its token
    auth = emu.control_headers
    snap = requests.get(f"{emu.url}/_emulator/stats", headers=auth, timeout=5).json()
    assert snap == json.loads(json.dumps(s.snapshot()))
    assert snap["operations"]["PutObject"]["buckets"] == {BUCKET: 2, other: 1}
    direct = httpx.get(f"{emu.url}/_emulator/jobs", headers=auth, timeout=5)
    assert direct.status_code == 200 and "jobs" in direct.json()
    assert httpx.get(f"{emu.url}/_emulator/nothing", headers=auth, timeout=5).status_code == 404
    # control calls are not counted
    assert s.count() == 5

    assert httpx.post(f"{emu.url}/_emulator/reset", headers=auth, timeout=5).json() == {"reset": True}
    assert s.count() == 0 and emu.get_object("examplebucket", "a") is None
    assert emu.store.has_bucket(other)  # buckets survive a reset
    s.record("X", None, True)
    s.reset()
    assert s.snapshot() == {"total": 0, "operations": {}, "errors": {}}


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_absolute_and_origin_form_targets(emu: Emulator, cos: Any) -> None:
    """A proxied request (absolute-form target) and a direct one reach the same object; paths are decoded."""
    emu.put_object("examplebucket", "x y/z.txt", b"payload")
    url = cos.get_presigned_url(Bucket=BUCKET, Key="x y/z.txt", Method="GET")
    path_q = url.split(HOST, 1)[1]
    absolute = _raw_http(emu.port, f"GET {url} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    origin = _raw_http(emu.port, f"GET {path_q} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    for raw in (absolute, origin):
        assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
        assert raw.endswith(b"payload")
    assert split_target(b"http://h.example:80/a%20b?q") == ("h.example:80", b"/a%20b?q")
    assert split_target(b"/k") == (None, b"/k")
    assert parse_query("image_process&a=b%2Fc&sp=a+b") == {"image_process": "", "a": "b/c", "sp": "a b"}


def test_many_concurrent_connections(emu: Emulator, cos: Any) -> None:
    """500 simultaneous keep-alive connections, proxied absolute-form GETs of a signed URL, all answered."""
    emu.put_object("examplebucket", "obj", b"x" * 100)
    url = cos.get_presigned_url(Bucket=BUCKET, Key="obj", Method="GET", Expired=600)
    request = f"GET {url} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    async def worker() -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        statuses = []
        try:
            for _ in range(2):
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next(int(h.split(b":")[1]) for h in lines if h.lower().startswith(b"content-length:"))
                assert await reader.readexactly(length) == b"x" * 100
                statuses.append(int(lines[0].split()[1]))
        finally:
            writer.close()
        return statuses

    async def main() -> list[int]:
        results = await asyncio.gather(*(worker() for _ in range(500)))
        return [s for r in results for s in r]

    assert asyncio.run(main()) == [200] * 1000
    assert emu.stats.count(operation="GetObject", ok=True) == 1000


def test_data_dir_persists_across_restart(tmp_path: Path) -> None:
    first = Emulator(data_dir=tmp_path).start()
    try:
        c = first.cos_client()
        c.put_object(
            Bucket=BUCKET,
            Key="keep/é 1.bin",
            Body=b"\x00persist",
            ContentType="application/x-test",
            Metadata={"x-cos-meta-k": "v"},
        )
        c.put_object(Bucket=BUCKET, Key="gone", Body=b"x")
        c.delete_object(Bucket=BUCKET, Key="gone")
        etag = c.head_object(Bucket=BUCKET, Key="keep/é 1.bin")["ETag"]
    finally:
        first.stop()
    second = Emulator(data_dir=tmp_path).start()
    try:
        c = second.cos_client()
        got = c.get_object(Bucket=BUCKET, Key="keep/é 1.bin")
        assert got["Body"].get_raw_stream().read() == b"\x00persist"
        assert (got["ETag"], got["Content-Type"], got["x-cos-meta-k"]) == (etag, "application/x-test", "v")
        assert [o["Key"] for o in c.list_objects(Bucket=BUCKET)["Contents"]] == ["keep/é 1.bin"]
    finally:
        second.stop()
    memory = Emulator().start()  # without a data dir nothing is kept
    try:
        assert memory.get_object("examplebucket", "keep/é 1.bin") is None
    finally:
        memory.stop()


def test_custom_credentials_and_buckets() -> None:
    with Emulator(credentials=[("AKIDCUSTOM", "custom-key")], buckets=("alpha", "beta-1250000009")) as emu:
        assert emu.store.buckets() == ["alpha-1250000000", "beta-1250000009"]
        c = emu.cos_client()
        assert c._conf._secret_id == "AKIDCUSTOM"
        c.put_object(Bucket="alpha-1250000000", Key="k", Body=b"v")
        with pytest.raises(LookupError):
            emu.credential(sts=True)


def test_cli_prints_connection_and_serves(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps({"seed": 1, "error_rate": 0.0}))
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"video")
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_tencent_ci.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--faults",
            str(faults),
            "--bucket",
            "cli",
            "--secret-id",
            "AKIDCLI",
            "--secret-key",
            "cli-secret-key-value",
            "--control-token",
            "cli-token",
            "--seed",
            f"cli:videos/={tmp_path / 'clips'}",
            "--rate-limit",
            "0.001",
            "--rate-burst",
            "3",
            "--rate-families",
            "objects",
            "--latency-median",
            "0.001",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        printed = "".join(lines)
        assert "cli-secret-key-value" not in printed  # issue 14 item 10: a custom key is never printed
        m = re.match(
            r"^Tencent CI emulator on (http://127\.0\.0\.1:\d+)  AIRFLOW_CONN_TENCENTCLOUD_DEFAULT='(.*)'$",
            lines[0].rstrip("\n"),
        )
        assert m, lines
        url, conn = m.group(1), json.loads(m.group(2))
        assert conn["login"] == "AKIDCLI" and conn["password"] == "<your --secret-key>"
        assert conn["extra"]["proxy"] == url
        assert lines[1].startswith("A custom secret key is in use")
        assert lines[2].startswith("Control token: cli-token ")
        assert lines[3].strip() == f"Object view: {url}/_emulator/view/cli-token/"
        from qcloud_cos import CosConfig, CosS3Client

        client = CosS3Client(
            CosConfig(
                Region="ap-guangzhou",
                SecretId="AKIDCLI",
                SecretKey="cli-secret-key-value",
                Scheme="http",
                Proxies={"http": url},
            ),
            retry=0,
        )
        client.put_object(Bucket="cli-1250000000", Key="k", Body=b"via cli")
        body = client.get_object(Bucket="cli-1250000000", Key="k")["Body"].get_raw_stream().read()
        assert body == b"via cli"
        seeded = client.get_object(Bucket="cli-1250000000", Key="videos/a.mp4")["Body"].get_raw_stream().read()
        assert seeded == b"video"
        with pytest.raises(CosServiceError) as throttled:  # the 4th object call of the burst of 3
            client.get_object(Bucket="cli-1250000000", Key="k")
        assert (throttled.value.get_status_code(), throttled.value.get_error_code()) == (503, "SlowDown")
        health = httpx.get(f"{url}/_emulator/health", headers={"Authorization": "Bearer cli-token"}, timeout=5)
        assert health.json()["ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert any((tmp_path / "data").rglob("*.bin"))


def test_emulator_package_imports_nothing_else_from_the_provider() -> None:
    code = (
        "import sys, airflow_provider_tencent_ci.emulator as e, airflow_provider_tencent_ci.emulator.pytest_plugin;"
        "from airflow_provider_tencent_ci.emulator import app, server;"
        "bad=[m for m in sys.modules if m.startswith('airflow_provider_tencent_ci.') and "
        "not m.startswith('airflow_provider_tencent_ci.emulator') or m=='airflow' or m.startswith('airflow.')];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
