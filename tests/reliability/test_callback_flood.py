"""1,000 callbacks per second at each receiver (the in-triggerer listener; the API-server receiver on uvicorn,
publishing to Redis), loopback only, from a separate sender process, for 2 s in the default run;
``test_callback_soak.py`` (marker ``soak``, skipped unless TENCENT_CI_SOAK=1) runs the full 10 s at the listener.

Every request gets an answer (404 wrong token, 400 malformed, 200 routed or stored in the relay), a waiting trigger
is not completed by forged callbacks, the real completion still arrives exactly once, and memory stays bounded."""

from __future__ import annotations

from typing import Any

import pytest

from tests.reliability._flood_scenario import check_flood, run_flood
from tests.reliability._targets import LABELS, TARGETS


@pytest.mark.parametrize("target_name", TARGETS)
def test_callback_flood_short(
    target_name: str, emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    result = run_flood(emu, fast_conn, monkeypatch, rate=1000, seconds=2.0, target_name=target_name)
    figures.record(
        f"{LABELS[target_name]}: flood 1000/s x 2 s",
        **{k: v for k, v in result.items() if k != "statuses"},
        answered=sum(result["statuses"].values()),
        statuses=result["statuses"],
    )
    check_flood(result)
