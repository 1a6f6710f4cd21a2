"""BDA SegmentCustomizedPortraitPic through the real tencentcloud SDK against the emulator."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from PIL import Image, ImageDraw
from tencentcloud.bda.v20200324 import models
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
ACTION = "SegmentCustomizedPortraitPic"


def portrait(width: int = 200, height: int = 260, fmt: str = "JPEG") -> bytes:
    img = Image.new("RGB", (width, height), (40, 160, 70))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.35, height * 0.08, width * 0.65, height * 0.38), fill=(230, 190, 160))
    draw.rectangle((width * 0.25, height * 0.38, width * 0.75, height), fill=(50, 60, 200))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    return tencent_conn


@pytest.fixture
def bda(emu: Any) -> Any:
    return emu.bda_client()


def segment(client: Any, params: dict[str, Any]) -> Any:
    req = models.SegmentCustomizedPortraitPicRequest()
    req.from_json_string(json.dumps(params))
    return client.SegmentCustomizedPortraitPic(req)


def error_code(client: Any, params: dict[str, Any]) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json(ACTION, params)
    assert info.value.get_request_id()
    return str(info.value.get_code())


def test_segments_requested_parts(emu: Any, bda: Any) -> None:
    resp = segment(bda, {"SegmentationOptions": {"Head": True, "Body": True}, "Image": b64(portrait())})
    assert resp.RequestId
    assert [r.Label for r in resp.ImageRects] == ["Head", "Body"]
    head, body = resp.ImageRects
    assert head.Y < body.Y and head.Width > 0 and body.Height > 0
    out = Image.open(io.BytesIO(base64.b64decode(resp.PortraitImage)))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (200, 260)
    alpha = out.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    assert alpha.getpixel((2, 2)) == 0 and alpha.getpixel((100, 200)) == 255
    mask = Image.open(io.BytesIO(base64.b64decode(resp.MaskImage)))
    assert mask.mode == "L" and mask.size == (200, 260)
    assert emu.stats.count(ACTION, ok=True) == 1


def test_fewer_parts_give_a_smaller_mask(bda: Any) -> None:
    image = b64(portrait(fmt="PNG"))
    small = segment(bda, {"SegmentationOptions": {"Hair": True}, "Image": image})
    large = segment(bda, {"SegmentationOptions": {"Head": True, "Body": True}, "Image": image})

    def covered(resp: Any) -> int:
        return sum(Image.open(io.BytesIO(base64.b64decode(resp.MaskImage))).histogram()[128:])

    assert 0 < covered(small) < covered(large)
    assert [r.Label for r in small.ImageRects] == ["Hair"]


def test_url_of_an_emulator_object_wins_over_image(emu: Any, bda: Any) -> None:
    emu.put_object(BUCKET, "people/p.png", portrait(fmt="PNG"))
    url = f"https://{BUCKET}.cos.{REGION}.myqcloud.com/people/p.png"
    resp = segment(bda, {"SegmentationOptions": {"Background": True}, "Url": url, "Image": "not base64 at all!"})
    assert [r.Label for r in resp.ImageRects] == ["Background"]


async def test_success_content_type_is_exactly_application_json() -> None:
    # The SDK parses API 3.0 bodies by exact Content-Type (no charset): check the handler's own answer.
    from airflow_provider_tencent_ci.emulator import bda as bda_handlers
    from airflow_provider_tencent_ci.emulator.core import EmulatorState, EmuRequest

    state = EmulatorState()
    body = json.dumps({"SegmentationOptions": {"Face": True}, "Image": b64(portrait())}).encode()
    req = EmuRequest(
        method="POST",
        host="bda.tencentcloudapi.com",
        service="bda",
        bucket=None,
        region=REGION,
        path="/",
        key="",
        query={},
        headers={"x-tc-action": ACTION, "x-tc-region": REGION},
        body=body,
        secret_id="AKID",
        request_id="req-1",
    )
    resp = await bda_handlers.handle_segment(state, req)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert json.loads(resp.body)["Response"]["RequestId"] == "req-1"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"SegmentationOptions": {"Background": False}, "Image": "AAAA"}, "InvalidParameter.InvalidParameter"),
        ({"SegmentationOptions": {}, "Image": "AAAA"}, "InvalidParameter.InvalidParameter"),
        ({"SegmentationOptions": {"Tail": True}, "Image": "AAAA"}, "InvalidParameter.InvalidParameter"),
        ({"SegmentationOptions": {"Head": "yes"}, "Image": "AAAA"}, "InvalidParameter.InvalidParameter"),
        ({"Image": "AAAA"}, "InvalidParameter.InvalidParameter"),
        ({"SegmentationOptions": {"Head": True}}, "InvalidParameter.InvalidParameter"),
        ({"SegmentationOptions": {"Head": True}, "Url": "not a url"}, "InvalidParameterValue.UrlIllegal"),
        ({"SegmentationOptions": {"Head": True}, "Url": "ftp://x/y.png"}, "InvalidParameterValue.UrlIllegal"),
        (
            {"SegmentationOptions": {"Head": True}, "Url": "https://www.example.com/a.jpg"},
            "FailedOperation.ImageDownloadError",
        ),
        (
            {"SegmentationOptions": {"Head": True}, "Url": f"https://{BUCKET}.cos.{REGION}.myqcloud.com/none.jpg"},
            "FailedOperation.ImageDownloadError",
        ),
        ({"SegmentationOptions": {"Head": True}, "Image": "%%%not-base64%%%"}, "FailedOperation.ImageDecodeFailed"),
        ({"SegmentationOptions": {"Head": True}, "Image": b64(b"no pixels")}, "FailedOperation.ImageDecodeFailed"),
    ],
)
def test_documented_refusals(bda: Any, params: dict[str, Any], code: str) -> None:
    assert error_code(bda, params) == code


def test_every_documented_option_is_accepted(bda: Any) -> None:
    parts = models.SegmentationOptions()
    names = [a.lstrip("_") for a in vars(parts)]
    assert len(names) == 21
    resp = segment(bda, {"SegmentationOptions": dict.fromkeys(names, True), "Image": b64(portrait())})
    assert {r.Label for r in resp.ImageRects} <= set(names)
    assert "Background" in {r.Label for r in resp.ImageRects}


def test_gif_is_not_supported(bda: Any) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (255, 0, 0)).save(buf, "GIF")
    assert error_code(bda, {"SegmentationOptions": {"Head": True}, "Image": b64(buf.getvalue())}) == (
        "FailedOperation.ImageNotSupported"
    )


@pytest.mark.parametrize(("size", "ok"), [((1999, 10), True), ((2000, 10), False), ((10, 2000), False)])
def test_resolution_limit(bda: Any, size: tuple[int, int], ok: bool) -> None:
    buf = io.BytesIO()
    Image.new("RGB", size, (255, 255, 255)).save(buf, "PNG")
    params = {"SegmentationOptions": {"Background": True}, "Image": b64(buf.getvalue())}
    if ok:
        assert segment(bda, params).RequestId
    else:
        assert error_code(bda, params) == "FailedOperation.ImageResolutionExceed"


def test_base64_over_5_mb_is_refused(bda: Any) -> None:
    image = "A" * (5 * 1024 * 1024 + 4)
    assert error_code(bda, {"SegmentationOptions": {"Head": True}, "Image": image}) == "FailedOperation.ImageSizeExceed"


def test_unsupported_region(emu: Any) -> None:
    client = emu.bda_client(region="ap-chengdu")
    assert error_code(client, {"SegmentationOptions": {"Head": True}, "Image": b64(portrait())}) == "UnsupportedRegion"
