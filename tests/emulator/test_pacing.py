"""Rate-limit mode and latency distribution (issue 16 item 1): answers and counts, never wall-clock time."""

from __future__ import annotations

import json
import statistics
from typing import Any

import pytest
from qcloud_cos import CosServiceError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from airflow_provider_tencent_ci.emulator import Emulator, FaultConfig
from airflow_provider_tencent_ci.emulator.faults import FaultInjector
from airflow_provider_tencent_ci.emulator.pacing import LatencyModel, LatencySampler, RateLimit

from .conftest import BUCKET
from .images import portrait


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _get(cos: Any, key: str = "k") -> str:
    try:
        cos.get_object(Bucket=BUCKET, Key=key)["Body"].get_raw_stream().read()
    except CosServiceError as err:
        return f"{err.get_status_code()} {err.get_error_code()}"
    return "ok"


def test_bucket_throttles_above_the_limit_and_admits_after_refill(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "k", b"v")
    clock = FakeClock()
    emu.set_rate_limit(2, burst=2, clock=clock)
    assert [_get(cos) for _ in range(4)] == ["ok", "ok", "503 SlowDown", "503 SlowDown"]
    clock.now += 0.5  # one token at 2/s
    assert [_get(cos) for _ in range(2)] == ["ok", "503 SlowDown"]
    clock.now += 10  # refills to the burst, not beyond
    assert [_get(cos) for _ in range(3)] == ["ok", "ok", "503 SlowDown"]
    assert emu.stats.errors(operation="GetObject", code="SlowDown") == 4
    assert emu.stats.count(operation="GetObject", ok=True) == 5
    emu.set_rate_limit(None)
    assert [_get(cos) for _ in range(5)] == ["ok"] * 5


def test_families_and_buckets_have_their_own_token_buckets(emu: Emulator, cos: Any) -> None:
    emu.put_object("examplebucket", "k", b"v")
    emu.put_object("examplebucket", "p.jpg", portrait(60, 80), content_type="image/jpeg")
    other = emu.create_bucket("other")
    emu.put_object("other", "k", b"v")
    emu.set_rate_limit(1, burst=1, clock=FakeClock())
    assert [_get(cos), _get(cos)] == ["ok", "503 SlowDown"]  # the objects family of examplebucket is empty
    cos.ci_process(Bucket=BUCKET, Key="p.jpg", CiProcess="GoodsMatting")  # the image family is not
    with pytest.raises(CosServiceError) as second_image:
        cos.ci_process(Bucket=BUCKET, Key="p.jpg", CiProcess="GoodsMatting")
    assert second_image.value.get_error_code() == "SlowDown"
    assert cos.get_object(Bucket=other, Key="k")["Body"].get_raw_stream().read() == b"v"  # another bucket
    # a limit restricted to the jobs family leaves objects alone
    emu.set_rate_limit(1, burst=1, families=["jobs"], clock=FakeClock())
    assert [_get(cos) for _ in range(3)] == ["ok"] * 3


def test_api3_answers_request_limit_exceeded(emu: Emulator) -> None:
    from tencentcloud.bda.v20200324 import models

    emu.set_rate_limit(1, burst=1, families=["bda"], clock=FakeClock())
    client = emu.bda_client()
    request = models.SegmentCustomizedPortraitPicRequest()
    request.from_json_string(
        json.dumps(
            {"SegmentationOptions": {"Face": True}, "Url": f"http://{BUCKET}.cos.ap-guangzhou.myqcloud.com/none"}
        )
    )
    codes = []
    for _ in range(2):
        with pytest.raises(TencentCloudSDKException) as info:
            client.SegmentCustomizedPortraitPic(request)
        codes.append(info.value.get_code())
    # the first is admitted (and fails on its missing image), the second is throttled
    assert codes == ["FailedOperation.ImageDownloadError", "RequestLimitExceeded"]
    assert emu.stats.errors(code="RequestLimitExceeded") == 1


def test_rate_limit_from_fault_config_data() -> None:
    config = FaultConfig.from_dict({"rate_limit": {"rate": 50, "families": ["image"]}, "latency_model": {"median": 1}})
    assert config.rate_limit == RateLimit(50, 50.0, ("image",))
    assert config.latency_model == LatencyModel(1)
    for bad in ({"rate": 0}, {"rate": 5, "burst": 0.5}, {"rate": 5, "families": ["video"]}):
        with pytest.raises(ValueError, match="RateLimit"):
            FaultConfig.from_dict({"rate_limit": bad})
    with pytest.raises(ValueError, match=r"LatencyModel\.median"):
        LatencyModel(float("inf"))


def test_seeded_latency_distribution_is_reproducible_and_long_tailed() -> None:
    model = LatencyModel(median=1.0, sigma=0.8, cap=30.0, seed=7)
    first = [LatencySampler(model).sample() for _ in range(1)]
    a, b = LatencySampler(model), LatencySampler(model)
    draws_a = [a.sample() for _ in range(4001)]
    assert draws_a == [b.sample() for _ in range(4001)]  # same seed, same delays
    assert first[0] == draws_a[0]
    other = LatencySampler(LatencyModel(median=1.0, sigma=0.8, cap=30.0, seed=8))
    assert [other.sample() for _ in range(10)] != draws_a[:10]
    assert 0.9 < statistics.median(draws_a) < 1.1
    assert statistics.mean(draws_a) > statistics.median(draws_a) * 1.2  # the long tail pulls the mean up
    assert max(draws_a) <= 30.0 and max(draws_a) > 5.0
    assert LatencySampler(LatencyModel(median=0.5, sigma=0)).sample() == 0.5


def test_injector_uses_the_model_for_every_decision() -> None:
    model = LatencyModel(median=0.2, sigma=1.0, seed=3)
    injector = FaultInjector(FaultConfig(latency=5.0, latency_model=model))
    expected = LatencySampler(model)
    assert [injector.decide("GetObject", "objects", "b").latency for _ in range(5)] == [
        expected.sample() for _ in range(5)
    ]
    injector.set(FaultConfig(latency=5.0))  # without a model, the fixed latency again
    assert injector.decide("GetObject").latency == 5.0


def test_emulator_set_latency_round_trip(emu: Emulator, cos: Any) -> None:
    emu.set_latency(0.001, sigma=0.1, seed=1)
    assert emu.state.faults.config.latency_model == LatencyModel(0.001, 0.1, None, 1)
    emu.put_object("examplebucket", "k", b"v")
    assert _get(cos) == "ok"
    emu.set_latency(None)
    assert emu.state.faults.config.latency_model is None
