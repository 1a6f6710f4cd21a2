"""Wire details of issue 12 against the emulator over real HTTP: the job list's filters, Content-Types, BDA's
Url-or-Image rule. (What exactly is sent is compared with the SDK in test_conformance.py.)"""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import pytest
from PIL import Image

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.hooks.bda import BDAHook
from airflow_provider_tencent_ci.hooks.ci import CIHook

from .conftest import BUCKET
from .test_ci_hook import SVB_REQUEST


def _svb(input_object: str) -> dict[str, Any]:
    return {**SVB_REQUEST, "Input": {"Object": input_object}}


def test_list_jobs_filters_by_input_object_sync_and_async(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    for key in ("in/a.mp4", "in/b.mp4"):
        emu.put_object(BUCKET, key, b"\x00" * 64)
    hook = CIHook()
    a = hook.submit_job(BUCKET, _svb("in/a.mp4"))
    hook.submit_job(BUCKET, _svb("in/b.mp4"))

    page = hook.list_jobs(BUCKET, "SegmentVideoBody", input_object="in/a.mp4")
    assert [j["JobId"] for j in page.jobs] == [a["JobId"]]
    assert len(hook.list_jobs(BUCKET, "SegmentVideoBody", queue_type="AIProcess").jobs) == 2

    async def alist() -> list[str]:
        h = CIHook()
        try:
            return [j["JobId"] for j in (await h.alist_jobs(BUCKET, "SegmentVideoBody", input_object="in/a.mp4")).jobs]
        finally:
            await h.aclose()

    assert asyncio.run(alist()) == [a["JobId"]]
    assert emu.stats.count(operation="ListJobs", ok=True) == 3


def test_list_jobs_refuses_bad_filters_before_any_request(emu: Any) -> None:
    hook = CIHook()
    with pytest.raises(ParameterValidationError, match=r"queue_type.*Bogus.*AIProcess"):
        hook.list_jobs(BUCKET, "SegmentVideoBody", queue_type="Bogus")
    with pytest.raises(ParameterValidationError, match="input_object"):
        hook.list_jobs(BUCKET, "SegmentVideoBody", input_object="")
    with pytest.raises(ParameterValidationError, match="queue_id"):
        asyncio.run(CIHook().alist_jobs(BUCKET, "SegmentVideoBody", queue_id=""))
    assert emu.stats.count() == 0


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 200)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("key", "fmt", "expected"),
    [
        ("up/in.png", "PNG", "image/png"),
        ("up/photo.jpg", "JPEG", "image/jpeg"),
        ("up/no-extension", "JPEG", "image/jpeg"),  # from the magic bytes
        ("up/misnamed.png", "JPEG", "image/jpeg"),  # the bytes win over the name
    ],
)
def test_upload_mode_sends_the_source_content_type(emu: Any, tmp_path: Any, key: str, fmt: str, expected: str) -> None:
    ops = {"rules": [{"fileid": "/out/r.png", "rule": "ci-process=AIPortraitMatting"}]}
    hook = CIHook()
    hook.put_object_with_pic_operations(BUCKET, key, _image(fmt), ops)
    assert emu.get_object(BUCKET, key).content_type == expected
    path = tmp_path / key.rsplit("/", 1)[-1]
    path.write_bytes(_image(fmt))
    with open(path, "rb") as fp:  # a stream: peeked, then sent whole
        hook.put_object_with_pic_operations(BUCKET, key + ".2", fp, ops)
    assert emu.get_object(BUCKET, key + ".2").content_type == expected
    assert emu.get_object(BUCKET, key + ".2").data == path.read_bytes()


def test_bda_refuses_url_and_image_together_before_any_request(emu: Any, png_bytes: bytes) -> None:
    with pytest.raises(ParameterValidationError) as info:
        BDAHook().segment_customized_portrait_pic(
            ["Hair"], image_base64=base64.b64encode(png_bytes).decode(), url="https://example.com/a.png"
        )
    assert "image_base64" in str(info.value) and "url" in str(info.value) and "not both" in str(info.value)
    assert "example.com" not in str(info.value)  # a pre-signed Url would carry a signature
    assert emu.stats.count() == 0
