"""pytest plugin: a session-wide emulator and a per-test connection to it.

Opt-in (no ``pytest11`` entry point, so installing the provider does not load it into every pytest session):
``pytest -p airflow_provider_tencent_ci.emulator.pytest_plugin``, the same in ``addopts``, or
``pytest_plugins = ["airflow_provider_tencent_ci.emulator.pytest_plugin"]`` in a top-level ``conftest.py``.

Importing this module is cheap: the emulator itself is imported when a fixture is first used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import Emulator


@pytest.fixture(scope="session")
def tencent_emulator() -> Iterator[Emulator]:
    """One emulator for the whole session (in memory, default credentials, bucket ``examplebucket-1250000000``)."""
    from .server import Emulator

    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def tencent_conn(tencent_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Reset the emulator, export ``AIRFLOW_CONN_TENCENTCLOUD_DEFAULT`` pointing at it, keep loopback off proxies.

    Also exports ``TENCENT_CI_EMULATOR_URL`` and ``TENCENT_CI_EMULATOR_TOKEN``, so the emulator's client commands
    (``python -m airflow_provider_tencent_ci.emulator seed|jobs|job|timing``) run from a test need no arguments.
    """
    tencent_emulator.reset()
    name, value = tencent_emulator.airflow_conn_env("tencentcloud_default")
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("TENCENT_CI_EMULATOR_URL", tencent_emulator.url)
    monkeypatch.setenv("TENCENT_CI_EMULATOR_TOKEN", tencent_emulator.control_token)
    for var in ("NO_PROXY", "no_proxy"):
        current = [p for p in os.environ.get(var, "").split(",") if p]
        for host in ("127.0.0.1", "localhost"):
            if host not in current:
                current.append(host)
        monkeypatch.setenv(var, ",".join(current))
    return tencent_emulator
