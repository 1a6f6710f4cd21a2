"""Shared fixtures for the emulator core tests: real SDK clients wired to the session emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator import Emulator
from tests.emulator.jobs_support import Receiver

BUCKET = "examplebucket-1250000000"


@pytest.fixture
def emu(tencent_conn: Emulator) -> Emulator:
    """The session emulator, reset for this test (the plugin's ``tencent_conn``)."""
    return tencent_conn


@pytest.fixture
def cos(emu: Emulator) -> Any:
    """A CosS3Client with the plain default credential and no SDK retries."""
    return emu.cos_client()


@pytest.fixture
def cos_sts(emu: Emulator) -> Any:
    return emu.cos_client(sts=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback HTTP server that records the callbacks the job engine sends."""
    r = Receiver()
    yield r
    r.close()
