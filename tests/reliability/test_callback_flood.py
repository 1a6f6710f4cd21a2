"""1,000 callbacks per second at the listener (loopback only, a separate sender process), for 2 s in the default
run; ``test_callback_soak.py`` (marker ``soak``, skipped unless TENCENT_CI_SOAK=1) runs the full 10 s.

Every request gets an answer (404 wrong token, 400 malformed, 200 routed), a waiting trigger is not completed by
forged callbacks, the real completion still arrives exactly once, and memory stays bounded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability._flood_scenario import check_flood, run_flood


def test_callback_flood_short(emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    result = run_flood(emu, fast_conn, monkeypatch, rate=1000, seconds=2.0)
    figures.record(
        "callback listener: flood 1000/s x 2 s",
        **{k: v for k, v in result.items() if k != "statuses"},
        answered=sum(result["statuses"].values()),
    )
    check_flood(result)
