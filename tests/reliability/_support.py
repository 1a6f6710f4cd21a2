"""Helpers shared by the reliability tests (no test code of the provider is mocked: everything is real HTTP)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

FAST_RETRY: dict[str, Any] = {"max_attempts": 4, "retry_base_delay": 0.005, "retry_max_delay": 0.02, "timeout": 10}
BUCKET = "examplebucket"
FULL_BUCKET = "examplebucket-1250000000"


def set_conn(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, login: str | None, password: str | None, extras: dict[str, Any]
) -> str:
    value = {"conn_type": "tencentcloud", "login": login, "password": password, "extra": extras}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    return conn_id


def set_emulator_conn(
    monkeypatch: pytest.MonkeyPatch, emu: Any, conn_id: str, *, sts: bool = True, **extra: Any
) -> str:
    cred = emu.credential(sts=sts)
    return set_conn(
        monkeypatch, conn_id, cred.secret_id, cred.secret_key, {**emu.connection_extras(sts=sts), **FAST_RETRY, **extra}
    )


def png(width: int = 16, height: int = 16, seed: int = 0) -> bytes:
    """A small PNG with a dark square on a coloured background (the matting emulation has an edge to find)."""
    img = Image.new("RGB", (width, height), ((seed * 37) % 256, 120, 200))
    for x in range(width // 4, 3 * width // 4):
        for y in range(height // 4, 3 * height // 4):
            img.putpixel((x, y), (20, 20, 20))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def mp4_bytes() -> bytes:
    """Anything the job engine accepts as a video source (it copies/derives its output from the input)."""
    return png(32, 32)
