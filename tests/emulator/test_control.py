"""The control API under /_emulator/ (issue 14 item 6): each attack reproduced over real HTTP, then the
seeding, job control and object view it serves to the token holder (issue 15 item 5)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
import requests

from airflow_provider_tencent_ci.emulator import Emulator

from .conftest import BUCKET

HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
MiB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _stream_body(port: int, head: bytes, total: int) -> tuple[int, bytes]:
    """Send ``head`` then up to ``total`` body bytes until the server stops reading or closes; return (bytes of the
    body sent, the response)."""
    chunk = b"\0" * MiB
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        sock.settimeout(1.0)
        try:
            while sent < total:
                sent += sock.send(chunk[: min(MiB, total - sent)])
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(5)
        response = b""
        try:
            while b"\r\n\r\n" not in response or not response.rstrip().endswith((b"}", b">")):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (TimeoutError, ConnectionResetError):
            pass
    return sent, response


# -- attacks -----------------------------------------------------------------------------------------------------
def test_reset_needs_the_token(emu: Emulator, tmp_path: Any) -> None:
    emu.put_object("examplebucket", "keep.txt", b"precious")
    # the browser-style simple POST of the finding: text/plain, a foreign Origin, no token
    evil = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    assert httpx.post(f"{emu.url}/_emulator/reset", headers=evil, content=b"x").status_code == 403
    assert httpx.post(f"{emu.url}/_emulator/reset").status_code == 401
    assert httpx.post(f"{emu.url}/_emulator/reset", headers={"Authorization": "Bearer wrong"}).status_code == 401
    # even the token holder's browser cannot be made to post cross-origin or as a simple form
    with_token = {**emu.control_headers, "Origin": "http://evil.example"}
    assert httpx.post(f"{emu.url}/_emulator/reset", headers=with_token).status_code == 403
    plain = {**emu.control_headers, "Content-Type": "text/plain"}
    assert httpx.post(f"{emu.url}/_emulator/reset", headers=plain, content=b"{}").status_code == 415
    assert emu.get_object("examplebucket", "keep.txt") is not None
    own_origin = {**emu.control_headers, "Origin": emu.url}
    assert httpx.post(f"{emu.url}/_emulator/reset", headers=own_origin).json() == {"reset": True}
    assert emu.get_object("examplebucket", "keep.txt") is None


def test_jobs_listing_needs_the_token(emu: Emulator) -> None:
    for path in ("jobs", "stats", "health", "objects", f"objects/{BUCKET}/"):
        answer = httpx.get(f"{emu.url}/_emulator/{path}")
        assert answer.status_code == 401, path
        assert "jobs" not in answer.json()
    assert httpx.get(f"{emu.url}/_emulator/jobs", headers={"X-Emulator-Token": emu.control_token}).status_code == 200


def test_control_api_answers_only_on_the_emulators_own_host(emu: Emulator) -> None:
    """DNS rebinding: a foreign Host (or the right name with another port) never reaches the control API."""
    for host in ("evil.example", f"evil.example:{emu.port}", f"127.0.0.1:{emu.port + 1}"):
        answer = httpx.get(f"{emu.url}/_emulator/health", headers={**emu.control_headers, "Host": host})
        assert answer.status_code != 200 and "ok" not in answer.text, host
    for host in (f"127.0.0.1:{emu.port}", f"localhost:{emu.port}"):
        answer = httpx.get(f"{emu.url}/_emulator/health", headers={**emu.control_headers, "Host": host})
        assert answer.json()["ok"] is True


def test_emulator_keys_on_a_bucket_host_are_ordinary_objects(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "other.txt", b"still here")
    cos.put_object(Bucket=BUCKET, Key="_emulator/reset", Body=b"an object")
    got = cos.get_object(Bucket=BUCKET, Key="_emulator/reset")["Body"].get_raw_stream().read()
    assert got == b"an object"
    assert emu.get_object("examplebucket", "other.txt") is not None  # no reset happened
    # unsigned, through the proxy, the same path is a COS request: refused by COS's rules, not served
    answer = requests.post(f"http://{HOST}/_emulator/reset", proxies={"http": emu.url}, timeout=5)
    assert answer.status_code == 403 and b"AccessDenied" in answer.content
    assert emu.get_object("examplebucket", "other.txt") is not None


@pytest.mark.parametrize("target", ["bucket", "control"])
def test_300_mib_unauthenticated_body_is_refused_unread(emu: Emulator, target: str) -> None:
    total = 300 * MiB
    if target == "bucket":
        head = f"PUT /big.bin HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {total}\r\n\r\n"
        expected = b"HTTP/1.1 403"
    else:
        head = f"PUT /_emulator/objects/{BUCKET}/big.bin HTTP/1.1\r\nHost: 127.0.0.1:{emu.port}\r\n"
        head += f"Content-Length: {total}\r\n\r\n"
        expected = b"HTTP/1.1 401"
    before = _rss_bytes()
    sent, response = _stream_body(emu.port, head.encode(), total)
    growth = _rss_bytes() - before
    assert response.startswith(expected), response[:200]
    assert b"connection: close" in response.lower()  # the rest of the body is never read
    assert sent < 64 * MiB, sent  # the server stopped reading: socket buffers filled, then it closed
    assert growth < 32 * MiB, growth
    assert emu.get_object("examplebucket", "big.bin") is None


def test_declared_length_above_the_cap_is_refused_before_reading(emu: Emulator, cos: Any) -> None:
    """A signed PUT whose Content-Length exceeds the object cap: 400 EntityTooLarge, the body never read."""
    authorization = cos.get_auth(Method="PUT", Bucket=BUCKET, Key="huge.bin")
    total = 600 * MiB
    head = f"PUT /huge.bin HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: {authorization}\r\n"
    head += f"Content-Length: {total}\r\n\r\n"
    sent, response = _stream_body(emu.port, head.encode(), total)
    assert response.startswith(b"HTTP/1.1 400") and b"<Code>EntityTooLarge</Code>" in response, response[:300]
    assert sent < 64 * MiB


def test_streamed_body_is_cut_at_the_cap() -> None:
    """A chunked body (no Content-Length) is counted as it arrives and cut at the cap."""
    with Emulator(max_object_bytes=MiB) as small:
        authorization = small.cos_client().get_auth(Method="PUT", Bucket=BUCKET, Key="chunked.bin")

        def chunks() -> Any:
            for _ in range(8):
                yield b"x" * (512 * 1024)

        answer = requests.put(
            f"http://{HOST}/chunked.bin",
            data=chunks(),
            headers={"Authorization": authorization},
            proxies={"http": small.url},
            timeout=10,
        )
        assert answer.status_code == 400 and b"EntityTooLarge" in answer.content
        assert small.get_object("examplebucket", "chunked.bin") is None
        small.cos_client().put_object(Bucket=BUCKET, Key="fits.bin", Body=b"y" * 1000)  # below the cap: fine
        assert small.get_object("examplebucket", "fits.bin") is not None


def test_bda_body_needs_a_known_secret_id_before_it_is_read(emu: Emulator) -> None:
    total = 50 * MiB
    head = (
        "POST / HTTP/1.1\r\nHost: bda.tencentcloudapi.com\r\nX-TC-Action: SegmentCustomizedPortraitPic\r\n"
        "Content-Type: application/json\r\n"
        "Authorization: TC3-HMAC-SHA256 Credential=AKIDUNKNOWN/2026-01-01/bda/tc3_request, SignedHeaders=host, "
        f"Signature=00\r\nContent-Length: {total}\r\n\r\n"
    )
    sent, response = _stream_body(emu.port, head.encode(), total)
    assert b"AuthFailure.SecretIdNotFound" in response, response[:300]
    assert sent < 40 * MiB


def test_the_token_is_generated_per_emulator_and_overridable() -> None:
    first, second = Emulator(), Emulator()
    assert first.control_token != second.control_token and len(first.control_token) >= 24
    assert Emulator(control_token="chosen").control_token == "chosen"
