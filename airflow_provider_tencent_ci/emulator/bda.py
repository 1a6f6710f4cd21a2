"""BDA SegmentCustomizedPortraitPic (API 3.0, version 2020-03-24).

Request: ``SegmentationOptions`` (21 booleans, at least one true), ``Image`` (base64, <= 5 MB encoded) or ``Url``
(Url wins when both are given). Images must be PNG/JPG/JPEG/BMP (no GIF) and smaller than 2000x2000.
Response: ``PortraitImage`` (base64 PNG with a transparent background outside the requested parts),
``MaskImage`` (base64 grayscale PNG of the same mask), ``ImageRects`` (labelled boxes), ``RequestId``.
Errors use the codes of the API document's error table.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from . import imaging
from .core import EmuRequest, EmuResponse, TcApiError, read_own_object

# Restated from the BDA document on purpose (not imported from the provider's constants): the emulator is an
# independent oracle, so a mistake in the provider's own list makes a test fail instead of hiding in both.
PARTS: tuple[str, ...] = (
    "Background",
    "Hair",
    "LeftEyebrow",
    "RightEyebrow",
    "LeftEye",
    "RightEye",
    "Nose",
    "UpperLip",
    "LowerLip",
    "Tooth",
    "Mouth",
    "LeftEar",
    "RightEar",
    "Face",
    "Head",
    "Body",
    "Hat",
    "Headdress",
    "Earrings",
    "Necklace",
    "Belongings",
)
REGIONS = ("ap-beijing", "ap-guangzhou", "ap-shanghai")
MAX_BASE64_BYTES = 5 * 1024 * 1024
MAX_SIDE_EXCLUSIVE = 2000
FORMATS = ("PNG", "JPEG", "BMP")

INVALID_PARAMETER = "InvalidParameter.InvalidParameter"


def _invalid(message: str) -> TcApiError:
    return TcApiError(INVALID_PARAMETER, message)


def parse_options(value: Any) -> list[str]:
    """The requested parts, in the documented order. Unknown names or non-boolean values are refused."""
    if not isinstance(value, dict):
        raise _invalid("SegmentationOptions is required and must be an object")
    unknown = sorted(set(value) - set(PARTS))
    if unknown:
        raise _invalid(f"SegmentationOptions has unknown options {unknown}; allowed: {', '.join(PARTS)}")
    for name, flag in value.items():
        if not isinstance(flag, bool):
            raise _invalid(f"SegmentationOptions.{name}={flag!r} must be a boolean")
    parts = [p for p in PARTS if value.get(p) is True]
    if not parts:
        raise _invalid("SegmentationOptions must set at least one option to true")
    return parts


def _download(state: Any, url: str) -> bytes:
    try:
        data = read_own_object(state, url)
    except ValueError:
        raise TcApiError("InvalidParameterValue.UrlIllegal", "URL格式不合法。") from None
    if data is None:
        raise TcApiError("FailedOperation.ImageDownloadError", "图片下载错误。")
    return data


def _b64_len(n: int) -> int:
    return 4 * ((n + 2) // 3)


def _load_image(state: Any, body: dict[str, Any]) -> bytes:
    url = body.get("Url")
    image = body.get("Image")
    if url is not None and not isinstance(url, str):
        raise _invalid("Url must be a string")
    if image is not None and not isinstance(image, str):
        raise _invalid("Image must be a string")
    if url:  # documented: when both are given only Url is used
        data = _download(state, url)
        if _b64_len(len(data)) > MAX_BASE64_BYTES:
            raise TcApiError("FailedOperation.ImageSizeExceed", "base64编码后的图片数据过大。")
        return data
    if not image:
        raise _invalid("one of Image or Url is required")
    if len(image) > MAX_BASE64_BYTES:
        raise TcApiError("FailedOperation.ImageSizeExceed", "base64编码后的图片数据过大。")
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise TcApiError("FailedOperation.ImageDecodeFailed", "图片解码失败。") from None


def _check_image(data: bytes) -> imaging.ImageInfo:
    try:
        info = imaging.probe(data)
    except imaging.ImageDecodeError:
        raise TcApiError("FailedOperation.ImageDecodeFailed", "图片解码失败。") from None
    if info.format not in FORMATS:
        raise TcApiError(
            "FailedOperation.ImageNotSupported", f"不支持的图片文件 ({info.format}); 支持 PNG、JPG、JPEG、BMP。"
        )
    if info.width >= MAX_SIDE_EXCLUSIVE or info.height >= MAX_SIDE_EXCLUSIVE:
        raise TcApiError(
            "FailedOperation.ImageResolutionExceed",
            f"图片分辨率过大 ({info.width}x{info.height}); 须小于 {MAX_SIDE_EXCLUSIVE}*{MAX_SIDE_EXCLUSIVE}。",
        )
    return info


def _segment(data: bytes, parts: list[str], skip_pixel_work: bool, info: imaging.ImageInfo) -> dict[str, Any]:
    if skip_pixel_work:
        blank = imaging.placeholder_png(info.width, info.height)
        mask = imaging.placeholder_png(info.width, info.height, "L")
        return {"PortraitImage": blank, "MaskImage": mask, "ImageRects": []}
    try:
        img = imaging.decode_image(data)
    except imaging.ImageDecodeError:
        raise TcApiError("FailedOperation.ImageDecodeFailed", "图片解码失败。") from None
    seg = imaging.segment_parts(img, parts)
    return {"PortraitImage": seg.portrait_png, "MaskImage": seg.mask_png, "ImageRects": seg.rects}


async def handle_segment(state: Any, req: EmuRequest) -> EmuResponse:
    """POST / with X-TC-Action: SegmentCustomizedPortraitPic."""
    region = req.headers.get("x-tc-region") or req.region
    if region and region not in REGIONS:
        raise TcApiError("UnsupportedRegion", f"The API does not support region {region}; use {', '.join(REGIONS)}")
    try:
        body = json.loads(req.body or b"{}")
    except ValueError:
        raise _invalid("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    parts = parse_options(body.get("SegmentationOptions"))
    data = _load_image(state, body)
    info = _check_image(data)
    skip = bool(getattr(state.faults, "skip_pixel_work", False))
    result = await asyncio.to_thread(_segment, data, parts, skip, info)
    payload = {
        "Response": {
            "PortraitImage": base64.b64encode(result["PortraitImage"]).decode("ascii"),
            "MaskImage": base64.b64encode(result["MaskImage"]).decode("ascii"),
            "ImageRects": result["ImageRects"],
            "RequestId": req.request_id,
        }
    }
    # Exactly application/json: the SDK only parses error bodies with that exact type (no charset).
    return EmuResponse(200, json.dumps(payload, ensure_ascii=False).encode("utf-8"), {}, "application/json")
