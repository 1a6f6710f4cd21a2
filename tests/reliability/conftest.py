"""Fixtures of the reliability and security suite: emulator connections with fast retries, and the figures log.

Every scenario records what it measured (requests, retries, jobs, losses) with ``figures.record(...)``. At the end
of the session the figures are written as JSON to ``$TENCENT_CI_FIGURES`` (default:
``<tmp>/tencent-ci-reliability-figures.json``) and printed in the terminal summary; RELIABILITY.md is filled from
that file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import _support

FIGURES_PATH = Path(
    os.environ.get("TENCENT_CI_FIGURES") or Path(tempfile.gettempdir()) / "tencent-ci-reliability-figures.json"
)


class Figures:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def record(self, scenario: str, **values: Any) -> None:
        self.data.setdefault(scenario, {}).update(values)


_FIGURES = Figures()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "soak: long-running load test (set TENCENT_CI_SOAK=1 to run it); skipped by default"
    )


@pytest.fixture(scope="session")
def figures() -> Figures:
    return _FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES.data:
        return
    FIGURES_PATH.write_text(json.dumps(_FIGURES.data, indent=2, sort_keys=True, default=str))
    terminalreporter.section("tencent-ci reliability figures")
    for scenario, values in sorted(_FIGURES.data.items()):
        shown = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
        terminalreporter.write_line(f"{scenario}: {shown}")
    terminalreporter.write_line(f"(written to {FIGURES_PATH})")


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    """The session emulator, reset (no faults, default job timings); the default connection points at it."""
    return tencent_conn


@pytest.fixture
def fast_conn(emu: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``tc_rel``: the emulator's STS credential (so there is a token to look for) with fast retries."""
    return _support.set_emulator_conn(monkeypatch, emu, "tc_rel", sts=True)
