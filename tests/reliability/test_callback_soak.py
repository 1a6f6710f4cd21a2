"""The full soak: 1,000 callbacks per second for 10 s. Skipped unless TENCENT_CI_SOAK=1 (``make soak``)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.reliability._flood_scenario import check_flood, run_flood

pytestmark = [
    pytest.mark.soak,
    pytest.mark.skipif(not os.environ.get("TENCENT_CI_SOAK"), reason="soak: set TENCENT_CI_SOAK=1 to run"),
]


def test_callback_flood_soak(emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    result = run_flood(emu, fast_conn, monkeypatch, rate=1000, seconds=10.0)
    figures.record(
        "callback listener: soak 1000/s x 10 s",
        **{k: v for k, v in result.items() if k != "statuses"},
        answered=sum(result["statuses"].values()),
    )
    check_flood(result)
