"""Seeded faults: throttling, 5xx and connection resets at their configured rate; callback plans; benchmark mode."""

from __future__ import annotations

from typing import Any

import pytest
from qcloud_cos import CosClientError, CosServiceError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from airflow_provider_tencent_ci.emulator import Emulator, FaultConfig, OperationFaults
from airflow_provider_tencent_ci.emulator.faults import FaultInjector

from .conftest import BUCKET


def _outcomes(cos: Any, n: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for _ in range(n):
        try:
            cos.get_object(Bucket=BUCKET, Key="obj")["Body"].get_raw_stream().read()
            key = "ok"
        except CosServiceError as exc:
            key = f"{exc.get_status_code()} {exc.get_error_code()}"
        except CosClientError:
            key = "reset"
        seen[key] = seen.get(key, 0) + 1
    return seen


def test_error_rate_mix_observed(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "obj", b"x")
    emu.set_faults(FaultConfig(seed=42, error_rate=0.2, errors=("throttle", "5xx"), operations=("GetObject",)))
    seen = _outcomes(cos, 1000)
    failures = 1000 - seen.get("ok", 0)
    assert 150 <= failures <= 250, seen  # binomial(1000, 0.2): sd ~ 12.6
    assert seen.get("503 SlowDown", 0) > 50 and seen.get("500 InternalError", 0) > 50, seen
    assert emu.stats.count(operation="GetObject", ok=False) == failures
    assert emu.stats.errors(operation="GetObject", code="SlowDown") == seen["503 SlowDown"]
    # other operations are untouched
    for _ in range(50):
        cos.head_object(Bucket=BUCKET, Key="obj")
    assert emu.stats.count(operation="HeadObject", ok=False) == 0


def test_same_seed_same_faults(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "obj", b"x")
    cfg = FaultConfig(seed=7, error_rate=0.3, errors=("5xx",))
    emu.set_faults(cfg)
    first = [k for k in (_outcomes(cos, 1) for _ in range(60))]
    emu.set_faults(cfg)
    second = [k for k in (_outcomes(cos, 1) for _ in range(60))]
    assert first == second


def test_connection_resets(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "obj", b"x")
    emu.set_faults(
        FaultConfig(seed=3, per_operation={"GetObject": OperationFaults(error_rate=0.25, errors=("reset",))})
    )
    seen = _outcomes(cos, 200)
    assert set(seen) <= {"ok", "reset"}, seen
    assert 25 <= seen.get("reset", 0) <= 75, seen
    assert emu.stats.errors(code="ConnectionReset") == seen["reset"]
    # the server keeps serving after resets
    emu.set_faults(None)
    assert _outcomes(cos, 5) == {"ok": 5}


def test_bda_throttling_is_request_limit_exceeded(emu: Emulator) -> None:
    emu.set_faults(FaultConfig(seed=1, error_rate=1.0, errors=("throttle",)))
    from tencentcloud.bda.v20200324 import models

    req = models.SegmentCustomizedPortraitPicRequest()
    req.from_json_string('{"Url": "http://example.invalid/x.jpg"}')
    with pytest.raises(TencentCloudSDKException) as exc:
        emu.bda_client().SegmentCustomizedPortraitPic(req)
    assert exc.value.get_code() == "RequestLimitExceeded"


def test_reset_clears_faults(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "obj", b"x")
    emu.set_faults({"seed": 1, "error_rate": 1.0, "errors": ["5xx"]})
    assert _outcomes(cos, 3) == {"500 InternalError": 3}
    emu.reset()
    emu.put_object("examplebucket", "obj", b"x")
    assert _outcomes(cos, 3) == {"ok": 3}


def test_callback_plan_rates() -> None:
    inj = FaultInjector(
        FaultConfig(
            seed=5,
            callback_drop_rate=0.1,
            callback_duplicate_rate=0.3,
            callback_delay=(0.5, 2.0),
            callback_reorder=True,
        )
    )
    plans = [inj.callback_plan() for _ in range(2000)]
    drops = sum(p.drop for p in plans)
    dups = sum(p.copies == 2 for p in plans)
    assert 140 <= drops <= 260
    assert 480 <= dups <= 720
    assert all(0.5 <= p.delay <= 2.0 for p in plans)
    assert inj.callback_reorder
    quiet = FaultInjector().callback_plan()
    assert (quiet.drop, quiet.copies, quiet.delay) == (False, 1, 0.0)


def test_fixed_latency_mode_and_config_validation() -> None:
    inj = FaultInjector(FaultConfig(fixed_latency=0.05, error_rate=0.5))
    assert inj.skip_pixel_work
    d = inj.decide("DescribeJobs")
    assert (d.kind, d.latency) == (None, 0.05)
    assert not FaultInjector().skip_pixel_work
    with pytest.raises(ValueError, match="error_rate"):
        FaultConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="unknown kinds"):
        FaultConfig(errors=("boom",))
    with pytest.raises(ValueError, match="unknown keys"):
        FaultConfig.from_dict({"eror_rate": 0.1})
