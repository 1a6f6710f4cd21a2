"""CI image AI through the real COS SDK against the emulator: download, upload and cloud modes."""

from __future__ import annotations

import functools
import io
import json
from typing import Any
from urllib.parse import quote

import pytest
from PIL import Image, ImageDraw
from qcloud_cos.cos_exception import CosServiceError

from tests.emulator import images

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"


# The shared test portrait, at the size these tests were written for.
portrait = functools.partial(images.portrait, 200, 260)
mean_abs_diff = images.mean_abs_diff


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.put_object(BUCKET, "photos/p.jpg", portrait(), content_type="image/jpeg")
    return tencent_conn


@pytest.fixture
def client(emu: Any) -> Any:
    return emu.cos_client()


def refused(fn: Any, *args: Any, **kwargs: Any) -> CosServiceError:
    with pytest.raises(CosServiceError) as info:
        fn(*args, **kwargs)
    return info.value


# -- download mode --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("process", ["AIPortraitMatting", "GoodsMatting"])
def test_matting_download_returns_png_with_real_alpha(client: Any, process: str) -> None:
    headers, body = client.ci_process(Bucket=BUCKET, Key="photos/p.jpg", CiProcess=process, NeedHeader=True)
    assert headers["Content-Type"] == "image/png"
    out = Image.open(io.BytesIO(body))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (200, 260)
    alpha = out.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    assert alpha.getpixel((2, 2)) == 0 and alpha.getpixel((100, 200)) == 255


def test_padding_layout_changes_size_exactly(client: Any) -> None:
    body = client.ci_process(
        Bucket=BUCKET, Key="photos/p.jpg", CiProcess="AIPortraitMatting", Params={"padding-layout": "20x10"}
    )
    out = Image.open(io.BytesIO(body))
    assert out.size == (200 + 2 * 20, 260 + 2 * 10)
    assert out.getchannel("A").crop((0, 0, 20, 280)).getextrema() == (0, 0)


def test_center_layout_centres_the_subject(emu: Any, client: Any) -> None:
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((5, 5, 45, 65), fill=(10, 10, 10))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    emu.put_object(BUCKET, "corner.png", buf.getvalue())
    body = client.ci_process(Bucket=BUCKET, Key="corner.png", CiProcess="GoodsMatting", Params={"center-layout": 1})
    box = Image.open(io.BytesIO(body)).getchannel("A").point(lambda v: 255 if v > 64 else 0).getbbox()
    assert box is not None
    assert abs((box[0] + box[2]) / 2 - 150) <= 2 and abs((box[1] + box[3]) / 2 - 100) <= 2


def test_face_beauty_strength_scales_the_change(client: Any) -> None:
    src = Image.open(io.BytesIO(portrait()))
    diffs = {}
    for strength in ("0", "0.2", "0.8"):
        body = client.ci_process(
            Bucket=BUCKET, Key="photos/p.jpg", CiProcess="AIFaceBeauty", Params={"strength": strength}
        )
        out = Image.open(io.BytesIO(body))
        assert out.format == "PNG" and out.size == src.size
        diffs[strength] = mean_abs_diff(src, out)
    assert diffs["0"] < 0.5  # PNG of the decoded source: the original pixels
    assert diffs["0.2"] < diffs["0.8"]
    assert diffs["0.8"] > diffs["0"] + 1.0


def test_detect_url_reads_the_emulators_own_object(emu: Any, client: Any) -> None:
    emu.put_object(BUCKET, "photos/a b%.jpg", portrait(), content_type="image/jpeg")
    # The SDK encodes the query value once on the wire; the emulator decodes it once (issue 12).
    for key in ("photos/p.jpg", quote("photos/a b%.jpg")):
        url = f"http://{BUCKET}.cos.{REGION}.myqcloud.com/{key}"
        body = client.ci_process(
            Bucket=BUCKET, Key="ignored.jpg", CiProcess="AIPortraitMatting", Params={"detect-url": url}
        )
        assert Image.open(io.BytesIO(body)).size == (200, 260)


@pytest.mark.parametrize("times", [1, 2])
def test_detect_url_encoded_more_than_once_is_refused(client: Any, times: int) -> None:
    """An encoding mistake (the caller encodes, then the SDK encodes again) must show, not be repaired."""
    url = f"http://{BUCKET}.cos.{REGION}.myqcloud.com/photos/p.jpg"
    for _ in range(times):
        url = quote(url, safe="")
    err = refused(
        client.ci_process, Bucket=BUCKET, Key="x.jpg", CiProcess="AIPortraitMatting", Params={"detect-url": url}
    )
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    assert "detect-url" in err.get_error_msg() and "more than once" in err.get_error_msg()


def test_detect_url_elsewhere_cannot_be_downloaded(client: Any) -> None:
    err = refused(
        client.ci_process,
        Bucket=BUCKET,
        Key="x.jpg",
        CiProcess="AIPortraitMatting",
        Params={"detect-url": "http://www.example.com/abc.jpg"},
    )
    assert err.get_status_code() == 400 and err.get_error_code() == "DownloadFailed"


@pytest.mark.parametrize(
    ("process", "params"),
    [
        ("AIPortraitMatting", {"center-layout": "2"}),
        ("GoodsMatting", {"center-layout": "yes"}),
        ("AIPortraitMatting", {"padding-layout": "1001x0"}),
        ("AIPortraitMatting", {"padding-layout": "0x1001"}),
        ("GoodsMatting", {"padding-layout": "20x"}),
        ("GoodsMatting", {"padding-layout": "-1x5"}),
        ("AIFaceBeauty", {"strength": "1.5"}),
        ("AIFaceBeauty", {"strength": "-0.1"}),
        ("AIFaceBeauty", {"strength": "abc"}),
        ("AIFaceBeauty", {"strength": "nan"}),
        ("AIFaceBeauty", {"ignore-error": "2"}),
        ("NoSuchProcess", {}),
    ],
)
def test_invalid_parameters_are_refused(client: Any, emu: Any, process: str, params: dict[str, str]) -> None:
    err = refused(client.ci_process, Bucket=BUCKET, Key="photos/p.jpg", CiProcess=process, Params=params)
    assert err.get_status_code() == 400
    assert err.get_error_code() == "InvalidArgument"
    assert err.get_request_id() not in ("", "Unknown")
    assert emu.stats.count("CIProcess", ok=False) == 1


def test_boundary_values_are_accepted(client: Any) -> None:
    body = client.ci_process(
        Bucket=BUCKET,
        Key="photos/p.jpg",
        CiProcess="GoodsMatting",
        Params={"padding-layout": "1000x0", "center-layout": "0"},
    )
    assert Image.open(io.BytesIO(body)).size == (2200, 260)
    body = client.ci_process(Bucket=BUCKET, Key="photos/p.jpg", CiProcess="AIFaceBeauty", Params={"strength": "1"})
    assert Image.open(io.BytesIO(body)).format == "PNG"


def test_missing_object_is_404(client: Any) -> None:
    err = refused(client.ci_process, Bucket=BUCKET, Key="nope.jpg", CiProcess="AIPortraitMatting")
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")


def test_non_image_is_refused_unless_ignore_error(emu: Any, client: Any) -> None:
    emu.put_object(BUCKET, "notes.txt", b"plain text, not pixels", content_type="text/plain")
    err = refused(client.ci_process, Bucket=BUCKET, Key="notes.txt", CiProcess="GoodsMatting")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidImageFormat")
    body = client.ci_process(Bucket=BUCKET, Key="notes.txt", CiProcess="AIFaceBeauty", Params={"ignore-error": "1"})
    assert body == b"plain text, not pixels"  # documented: the original comes back instead of an error


# -- upload mode ----------------------------------------------------------------------------------------------
THREE_RULES = [
    {"fileid": "out/matted.png", "rule": "ci-process=AIPortraitMatting&padding-layout=5x6"},
    {"fileid": "/abs/beauty.png", "rule": "ci-process=AIFaceBeauty&strength=0.7"},
    {"bucket": "other-1250000000", "fileid": "goods.png", "rule": "ci-process=GoodsMatting&center-layout=1"},
]


def test_upload_stores_original_and_result(emu: Any, client: Any) -> None:
    ops = {"is_pic_info": 1, "rules": THREE_RULES[:1]}
    _headers, result = client.ci_put_object(
        Bucket=BUCKET, Body=portrait(), Key="up/src.jpg", PicOperations=json.dumps(ops)
    )
    original = emu.get_object(BUCKET, "up/src.jpg")
    assert original is not None and original.data == portrait()
    info = result["OriginalInfo"]
    assert info["Key"] == "up/src.jpg"
    assert info["Location"] == f"{BUCKET}.cos.{REGION}.myqcloud.com/up/src.jpg"
    assert info["ETag"] == original.etag
    assert info["ImageInfo"]["Width"] == "200" and info["ImageInfo"]["Height"] == "260"
    assert info["ImageInfo"]["Format"] == "jpg"
    obj = result["ProcessResults"]["Object"]
    rec = emu.get_object(BUCKET, "up/out/matted.png")
    assert obj["Key"] == "up/out/matted.png" and rec is not None and rec.content_type == "image/png"
    assert obj["ETag"] == rec.etag and obj["Size"] == str(rec.size)
    assert obj["Location"] == f"{BUCKET}.cos.{REGION}.myqcloud.com/up/out/matted.png"
    assert Image.open(io.BytesIO(rec.data)).size == (210, 272)


@pytest.mark.parametrize("count", [2, 3])
def test_upload_with_more_than_one_rule_is_refused(emu: Any, client: Any, count: int) -> None:
    """ci-ai-portrait-matting.txt, processing during upload: "Content Recognition only supports one rule"."""
    emu.create_bucket("other")
    ops = {"rules": THREE_RULES[:count]}
    err = refused(client.ci_put_object, Bucket=BUCKET, Body=portrait(), Key="up/src.jpg", PicOperations=json.dumps(ops))
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")
    assert "only supports one rule" in err.get_error_msg()
    assert emu.list_keys(BUCKET, "up/") == [] and emu.list_keys("other") == []


def test_cloud_processing_stores_each_rules_result(emu: Any, client: Any) -> None:
    emu.create_bucket("other")
    emu.put_object(BUCKET, "up/src.jpg", portrait(), content_type="image/jpeg")
    _headers, result = client.ci_image_process(
        Bucket=BUCKET, Key="up/src.jpg", PicOperations=json.dumps({"rules": THREE_RULES})
    )
    objects = result["ProcessResults"]["Object"]
    assert [o["Key"] for o in objects] == ["up/out/matted.png", "abs/beauty.png", "up/goods.png"]
    expected = [(BUCKET, "up/out/matted.png"), (BUCKET, "abs/beauty.png"), ("other-1250000000", "up/goods.png")]
    for obj, (bucket, key) in zip(objects, expected, strict=True):
        rec = emu.get_object(bucket, key)
        assert rec is not None, key
        assert rec.content_type == "image/png"
        assert obj["ETag"] == rec.etag and obj["Size"] == str(rec.size)
        assert obj["Location"] == f"{bucket}.cos.{REGION}.myqcloud.com/{key}"


def test_upload_without_pic_info_has_no_image_info(client: Any) -> None:
    ops = {"rules": [{"fileid": "r.png", "rule": "ci-process=GoodsMatting"}]}
    _, result = client.ci_put_object(Bucket=BUCKET, Body=portrait(), Key="a.jpg", PicOperations=json.dumps(ops))
    assert "ImageInfo" not in result["OriginalInfo"]
    assert result["ProcessResults"]["Object"]["Key"] == "r.png"


def test_result_overwriting_the_original_reports_its_etag(emu: Any, client: Any) -> None:
    ops = {"rules": [{"fileid": "same.jpg", "rule": "ci-process=AIPortraitMatting"}]}
    _, result = client.ci_put_object(Bucket=BUCKET, Body=portrait(), Key="same.jpg", PicOperations=json.dumps(ops))
    rec = emu.get_object(BUCKET, "same.jpg")
    assert rec.content_type == "image/png"
    assert result["OriginalInfo"]["ETag"] == rec.etag == result["ProcessResults"]["Object"]["ETag"]


def _rules(*rules: dict[str, str]) -> dict[str, Any]:
    return {"rules": list(rules)}


GOODS = "ci-process=GoodsMatting"
BAD_OPERATIONS = [
    (_rules(*({"fileid": f"r{i}.png", "rule": GOODS} for i in range(6))), 400, "InvalidArgument"),
    (_rules({"fileid": "dir/", "rule": GOODS}), 400, "InvalidArgument"),
    (_rules({"rule": GOODS}), 400, "InvalidArgument"),
    (_rules({"fileid": "r.png"}), 400, "InvalidArgument"),
    (_rules({"fileid": "r.png", "rule": "center-layout=1"}), 400, "InvalidArgument"),
    (_rules({"fileid": "r.png", "rule": GOODS + "&padding-layout=2000x1"}), 400, "InvalidArgument"),
    (_rules({"fileid": "r.png", "rule": "ci-process=AIFaceBeauty&strength=3"}), 400, "InvalidArgument"),
    ({"is_pic_info": 2, "rules": []}, 400, "InvalidArgument"),
    (_rules({"bucket": "ghost-1250000000", "fileid": "r.png", "rule": GOODS}), 404, "NoSuchBucket"),
]


@pytest.mark.parametrize(("ops", "status", "code"), BAD_OPERATIONS)
def test_invalid_pic_operations_store_nothing(
    emu: Any, client: Any, ops: dict[str, Any], status: int, code: str
) -> None:
    err = refused(
        client.ci_put_object, Bucket=BUCKET, Body=portrait(), Key="bad/src.jpg", PicOperations=json.dumps(ops)
    )
    assert (err.get_status_code(), err.get_error_code()) == (status, code)
    assert emu.get_object(BUCKET, "bad/src.jpg") is None
    assert emu.list_keys(BUCKET, "bad/") == []


def test_malformed_pic_operations_json_is_refused(client: Any) -> None:
    err = refused(client.ci_put_object, Bucket=BUCKET, Body=portrait(), Key="m.jpg", PicOperations="{not json")
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")


@pytest.mark.parametrize("body", [b"abc", b""])
def test_upload_of_non_image_is_refused(emu: Any, client: Any, body: bytes) -> None:
    ops = {"rules": [{"fileid": "r.png", "rule": "ci-process=GoodsMatting"}]}
    err = refused(client.ci_put_object, Bucket=BUCKET, Body=body, Key="t.txt", PicOperations=json.dumps(ops))
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidImageFormat")
    # issue 14 item 10: the message says what was wrong, not Pillow's in-memory file object
    assert "BytesIO" not in err.get_error_msg() and f"{len(body)} bytes" in err.get_error_msg()
    assert emu.get_object(BUCKET, "t.txt") is None


def test_result_key_longer_than_850_bytes_is_refused(emu: Any, client: Any) -> None:
    ops = {"rules": [{"fileid": "/" + "é" * 426, "rule": "ci-process=GoodsMatting"}]}  # 852 bytes in UTF-8
    err = refused(client.ci_image_process, Bucket=BUCKET, Key="photos/p.jpg", PicOperations=json.dumps(ops))
    assert (err.get_status_code(), err.get_error_code()) == (400, "KeyTooLong")


# -- cloud mode -----------------------------------------------------------------------------------------------
def test_cloud_processing_reads_the_stored_object(emu: Any, client: Any) -> None:
    before = emu.get_object(BUCKET, "photos/p.jpg").etag
    ops = {"is_pic_info": 1, "rules": [{"fileid": "beauty.png", "rule": "ci-process=AIFaceBeauty&strength=0.9"}]}
    _, result = client.ci_image_process(Bucket=BUCKET, Key="photos/p.jpg", PicOperations=json.dumps(ops))
    assert result["OriginalInfo"]["ETag"] == before
    assert result["OriginalInfo"]["ImageInfo"]["Width"] == "200"
    rec = emu.get_object(BUCKET, "photos/beauty.png")
    assert rec is not None and rec.content_type == "image/png"
    assert result["ProcessResults"]["Object"]["Size"] == str(rec.size)
    assert emu.get_object(BUCKET, "photos/p.jpg").etag == before  # the source is untouched
    assert emu.stats.count("ImageProcess", ok=True) == 1


def test_cloud_processing_of_missing_source_is_404(client: Any) -> None:
    ops = {"rules": [{"fileid": "x.png", "rule": "ci-process=GoodsMatting"}]}
    err = refused(client.ci_image_process, Bucket=BUCKET, Key="missing.jpg", PicOperations=json.dumps(ops))
    assert (err.get_status_code(), err.get_error_code()) == (404, "NoSuchKey")


def test_cloud_processing_with_six_rules_is_refused(client: Any) -> None:
    ops = {"rules": [{"fileid": f"r{i}.png", "rule": "ci-process=GoodsMatting"} for i in range(6)]}
    err = refused(client.ci_image_process, Bucket=BUCKET, Key="photos/p.jpg", PicOperations=json.dumps(ops))
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument")


def test_benchmark_mode_returns_cheap_valid_images_of_the_right_size(emu: Any, client: Any) -> None:
    from airflow_provider_tencent_ci.emulator.faults import FaultConfig

    emu.set_faults(FaultConfig(fixed_latency=0.0))
    body = client.ci_process(
        Bucket=BUCKET, Key="photos/p.jpg", CiProcess="AIPortraitMatting", Params={"padding-layout": "3x4"}
    )
    out = Image.open(io.BytesIO(body))
    assert out.format == "PNG" and out.size == (206, 268)
    err = refused(
        client.ci_process, Bucket=BUCKET, Key="photos/p.jpg", CiProcess="AIFaceBeauty", Params={"strength": 9}
    )
    assert err.get_error_code() == "InvalidArgument"  # validation still applies
