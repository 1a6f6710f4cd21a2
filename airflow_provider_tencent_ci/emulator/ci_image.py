"""CI synchronous image AI: AIPortraitMatting, GoodsMatting, AIFaceBeauty in their three documented modes.

- download: ``GET /<key>?ci-process=<name>&...`` (source = the object, or ``detect-url``): image in the body;
- upload: ``PUT /<key>`` with ``Pic-Operations``: stores the original and each rule's result, answers UploadResult;
- cloud: ``POST /<key>?image_process`` with ``Pic-Operations``: source from the bucket, results stored.

Parameter rules follow the API documents (center-layout 0/1, padding-layout ``<dx>x<dy>`` each 0..1000, strength
a float in 0..1, ignore-error 0/1, at most five rules, fileid not ending in "/"). Refusals are COS-style XML
errors: 400 InvalidArgument for parameters, 404 NoSuchKey/NoSuchBucket for missing sources/targets.
"""

from __future__ import annotations

import asyncio
import json
import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from . import imaging
from .core import CosError, EmuRequest, EmuResponse, read_own_object
from .cos import check_key_length, user_metadata

PORTRAIT_MATTING = "AIPortraitMatting"
GOODS_MATTING = "GoodsMatting"
FACE_BEAUTY = "AIFaceBeauty"
PROCESSES = (PORTRAIT_MATTING, GOODS_MATTING, FACE_BEAUTY)
MATTING_PROCESSES = (PORTRAIT_MATTING, GOODS_MATTING)
PADDING_MAX = 1000
MAX_RULES = 5
# Upload mode: "rules: Processing rule, Content Recognition only supports one rule" (ci-ai-portrait-matting.txt,
# "Method Two: Processing during Upload"). The GoodsMatting and AIFaceBeauty pages repeat the generic "currently
# supports five rules" there; the sources disagree, so the emulator takes the strict reading for every AI process
# (the provider sends one rule per upload).
MAX_UPLOAD_RULES = 1
# Processing-in-the-cloud/upload limit of the image persistence APIs (32 MB); larger sources are refused.
MAX_SOURCE_BYTES = 32 * 1024 * 1024
# Image work runs in a worker thread above this many bytes so big images do not stall the event loop.
_THREAD_THRESHOLD = 64 * 1024

_PADDING_RE = re.compile(r"^\s*(\d{1,4})\s*x\s*(\d{1,4})\s*$")

# Codes: parameters -> InvalidArgument (400); undecodable source -> InvalidImageFormat (400);
# detect-url unreachable -> DownloadFailed (400). The last two are emulator choices where the CI error table
# could not be confirmed; both are 4xx, so clients classify them as non-retryable request errors.
CODE_INVALID_ARGUMENT = "InvalidArgument"
CODE_INVALID_IMAGE = "InvalidImageFormat"
CODE_DOWNLOAD_FAILED = "DownloadFailed"
CODE_TOO_LARGE = "EntityTooLarge"


def _bad(message: str) -> CosError:
    return CosError(400, CODE_INVALID_ARGUMENT, message)


# -- parameters ---------------------------------------------------------------------------------------------
@dataclass
class ProcessParams:
    process: str
    center_layout: bool = False
    padding: tuple[int, int] = (0, 0)
    strength: float = 0.5
    ignore_error: bool = False


def _flag(name: str, value: str) -> bool:
    if value not in ("0", "1"):
        raise _bad(f"{name}={value!r} is invalid: must be 0 or 1")
    return value == "1"


def parse_params(process: str, params: dict[str, str]) -> ProcessParams:
    """Validate the documented parameters of one ci-process (unknown extra parameters are ignored)."""
    if process not in PROCESSES:
        raise _bad(f"ci-process={process!r} is not supported; supported: {', '.join(PROCESSES)}")
    out = ProcessParams(process)
    if process in MATTING_PROCESSES:
        if "center-layout" in params:
            out.center_layout = _flag("center-layout", params["center-layout"].strip())
        if "padding-layout" in params:
            raw = params["padding-layout"]
            m = _PADDING_RE.match(raw)
            if not m:
                raise _bad(f"padding-layout={raw!r} is invalid: format is <dx>x<dy>, e.g. 20x10")
            dx, dy = int(m.group(1)), int(m.group(2))
            if dx > PADDING_MAX or dy > PADDING_MAX:
                raise _bad(f"padding-layout={raw!r} is invalid: dx and dy must each be within 0..{PADDING_MAX}")
            out.padding = (dx, dy)
    else:
        if "strength" in params:
            raw = params["strength"].strip()
            try:
                value = float(raw)
            except ValueError:
                raise _bad(f"strength={raw!r} is invalid: must be a number within 0..1") from None
            if math.isnan(value) or not 0.0 <= value <= 1.0:
                raise _bad(f"strength={raw!r} is invalid: must be a number within 0..1")
            out.strength = value
        if "ignore-error" in params:
            out.ignore_error = _flag("ignore-error", params["ignore-error"].strip())
    return out


def parse_rule(rule: str) -> tuple[str, dict[str, str]]:
    """``ci-process=AIPortraitMatting&center-layout=1`` -> ("AIPortraitMatting", {...})."""
    params: dict[str, str] = {}
    for part in rule.split("&"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise _bad(f"rule {rule!r} is invalid: {part!r} is not name=value")
        params[unquote(name.strip())] = unquote(value.strip())
    process = params.pop("ci-process", "")
    if not process:
        raise _bad(f"rule {rule!r} is invalid: it must start with ci-process=<{'|'.join(PROCESSES)}>")
    return process, params


# -- processing ---------------------------------------------------------------------------------------------
def _process_sync(data: bytes, p: ProcessParams, skip_pixel_work: bool) -> bytes:
    if skip_pixel_work:
        info = imaging.probe(data)  # still refuses non-images, cheaply
        if p.process in MATTING_PROCESSES:
            return imaging.placeholder_png(info.width + 2 * p.padding[0], info.height + 2 * p.padding[1])
        return imaging.placeholder_png(info.width, info.height, "RGB")
    if p.process in MATTING_PROCESSES:
        return imaging.matting(data, center_layout=p.center_layout, padding=p.padding)
    return imaging.face_beauty(data, strength=p.strength)


async def run_process(state: Any, data: bytes, p: ProcessParams) -> bytes:
    """The result image (PNG) or CosError 400 for a source that is not a decodable image."""
    if len(data) > MAX_SOURCE_BYTES:
        raise CosError(400, CODE_TOO_LARGE, f"source image is {len(data)} bytes; the limit is {MAX_SOURCE_BYTES}")
    skip = bool(getattr(state.faults, "skip_pixel_work", False))
    try:
        if len(data) > _THREAD_THRESHOLD and not skip:
            return await asyncio.to_thread(_process_sync, data, p, skip)
        return _process_sync(data, p, skip)
    except imaging.ImageDecodeError:
        raise _not_an_image(data) from None


def _not_an_image(data: bytes) -> CosError:
    """The refusal of bytes Pillow cannot read. Pillow's own text names its in-memory file object
    (``<_io.BytesIO object at 0x...>``), so it is not passed on."""
    what = "the source is empty (0 bytes)" if not data else f"the source ({len(data)} bytes)"
    return CosError(400, CODE_INVALID_IMAGE, f"{what} is not an image the service can decode")


# -- sources ------------------------------------------------------------------------------------------------
def decode_detect_url(raw: str) -> str:
    """detect-url after the query's own percent-decoding, which is the only decoding (issue 12): both official SDKs
    encode the value once on the wire, and the provider sends it that way. The seed's example
    (``http%25253A%25252F...``, ci-ai-portrait-matting.txt) looks triple-encoded; a value that is still encoded
    after one decoding is refused, so an encoding mistake shows in a test instead of being repaired here."""
    value = raw.strip()
    if not re.match(r"^https?://", value, re.I):
        hint = " (it looks percent-encoded more than once)" if re.match(r"^https?%", value, re.I) else ""
        raise _bad(f"detect-url={value!r} is invalid: it must be an http(s) URL encoded once as a query value{hint}")
    return value


def fetch_url(state: Any, url: str) -> bytes:
    """The bytes behind a detect-url (only the emulator's own objects can be downloaded)."""
    try:
        data = read_own_object(state, url)
    except ValueError:
        raise CosError(400, CODE_INVALID_ARGUMENT, f"detect-url={url!r} is not a valid http(s) URL") from None
    if data is None:
        raise CosError(400, CODE_DOWNLOAD_FAILED, f"failed to download detect-url {url!r}")
    return data


def _require_bucket(state: Any, bucket: str | None) -> str:
    if not bucket or not state.store.has_bucket(bucket):
        raise CosError(404, "NoSuchBucket", f"The specified bucket does not exist: {bucket}")
    return bucket


def _source_object(state: Any, bucket: str, key: str) -> Any:
    if not key:
        raise _bad("ObjectKey is required (or give detect-url)")
    rec = state.store.get(bucket, key)
    if rec is None:
        raise CosError(404, "NoSuchKey", f"The specified key does not exist: {key}")
    return rec


# -- download mode ------------------------------------------------------------------------------------------
async def handle_ci_process(state: Any, req: EmuRequest) -> EmuResponse:
    """GET /<key>?ci-process=<name>: the processed image in the body (image/png)."""
    bucket = _require_bucket(state, req.bucket)
    process = req.query.get("ci-process", "")
    params = {k: v for k, v in req.query.items() if k != "ci-process"}
    p = parse_params(process, params)
    detect_url = params.get("detect-url", "")
    if detect_url.strip():
        data = fetch_url(state, decode_detect_url(detect_url))
        source_type = "application/octet-stream"
    else:
        rec = _source_object(state, bucket, req.key)
        data, source_type = bytes(rec.data), rec.content_type
    try:
        body = await run_process(state, data, p)
    except CosError:
        if p.process == FACE_BEAUTY and p.ignore_error:
            # Documented: with ignore-error=1 a failed beautification returns the original image.
            return EmuResponse(200, data, {}, source_type or "application/octet-stream")
        raise
    return EmuResponse(200, body, {}, "image/png")


# -- Pic-Operations (upload and cloud modes) ----------------------------------------------------------------
@dataclass
class PicRule:
    bucket: str
    key: str
    params: ProcessParams


@dataclass
class PicOperations:
    is_pic_info: bool
    rules: list[PicRule]


def _result_key(source_key: str, fileid: str) -> str:
    if fileid.startswith("/"):
        return fileid.lstrip("/")
    folder = posixpath.dirname(source_key)
    return f"{folder}/{fileid}" if folder else fileid


def parse_pic_operations(
    state: Any, header: str | None, bucket: str, source_key: str, upload: bool = False
) -> PicOperations:
    """Validate a Pic-Operations header. ``upload``: processing during upload, where Content Recognition (the AI
    processes, the only ones this emulator knows) takes a single rule."""
    if header is None or not header.strip():
        raise _bad("the Pic-Operations header is required")
    try:
        doc = json.loads(header)
    except ValueError as exc:
        raise _bad(f"Pic-Operations is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _bad("Pic-Operations must be a JSON object")
    raw_info = doc.get("is_pic_info", 0)
    if isinstance(raw_info, bool) or str(raw_info).strip() not in ("0", "1"):
        raise _bad(f"is_pic_info={raw_info!r} is invalid: must be 0 or 1")
    rules_doc = doc.get("rules", [])
    if rules_doc is None:
        rules_doc = []
    if not isinstance(rules_doc, list):
        raise _bad("Pic-Operations rules must be a JSON array")
    if len(rules_doc) > MAX_RULES:
        raise _bad(f"Pic-Operations has {len(rules_doc)} rules; at most {MAX_RULES} are supported")
    if upload and len(rules_doc) > MAX_UPLOAD_RULES:
        raise _bad(
            f"Pic-Operations has {len(rules_doc)} rules; in upload mode Content Recognition only supports one rule"
        )
    rules: list[PicRule] = []
    for i, item in enumerate(rules_doc):
        if not isinstance(item, dict):
            raise _bad(f"rules[{i}] must be a JSON object")
        fileid = item.get("fileid")
        if not isinstance(fileid, str) or not fileid.strip() or fileid.strip() == "/":
            raise _bad(f"rules[{i}].fileid is required")
        if fileid.endswith("/"):
            raise _bad(f"rules[{i}].fileid={fileid!r} is invalid: it must not end with '/' (empty file name)")
        rule = item.get("rule")
        if not isinstance(rule, str) or not rule.strip():
            raise _bad(f"rules[{i}].rule is required")
        target_bucket = item.get("bucket") or bucket
        if not isinstance(target_bucket, str):
            raise _bad(f"rules[{i}].bucket must be a string")
        if not state.store.has_bucket(target_bucket):
            raise CosError(404, "NoSuchBucket", f"rules[{i}].bucket {target_bucket!r} does not exist")
        process, params = parse_rule(rule)
        result_key = _result_key(source_key, fileid)
        check_key_length(result_key)
        rules.append(PicRule(target_bucket, result_key, parse_params(process, params)))
    return PicOperations(str(raw_info).strip() == "1", rules)


def _location(bucket: str, region: str, key: str) -> str:
    return f"{bucket}.cos.{region}.myqcloud.com/{key}"


def _quoted_etag(etag: str) -> str:
    return '"' + etag.strip('"') + '"'


def _el(name: str, value: object) -> str:
    text = escape(str(value))
    return f"<{name}>{text}</{name}>" if text else f"<{name}/>"


async def _compute(state: Any, data: bytes, ops: PicOperations) -> list[tuple[PicRule, bytes]]:
    """Every rule's result, computed before anything is stored: a failing rule stores nothing."""
    return [(rule, await run_process(state, data, rule.params)) for rule in ops.rules]


def _store_and_answer(
    state: Any,
    req: EmuRequest,
    bucket: str,
    source_key: str,
    data: bytes,
    source_etag: str,
    ops: PicOperations,
    results: list[tuple[PicRule, bytes]],
) -> EmuResponse:
    region = req.region or state.default_region
    objects: list[str] = []
    original_etag = source_etag
    for rule, body in results:
        rec = state.store.put(rule.bucket, rule.key, body, content_type="image/png")
        if rule.bucket == bucket and rule.key == source_key:
            original_etag = rec.etag  # documented: the result's ETag when the result overwrote the original
        objects.append(
            "<Object>"
            + _el("Key", rule.key)
            + _el("Location", _location(rule.bucket, region, rule.key))
            + "<Format/>"
            + _el("Size", rec.size)
            + _el("ETag", _quoted_etag(rec.etag))
            + "</Object>"
        )
    original = ["<OriginalInfo>", _el("Key", source_key), _el("Location", _location(bucket, region, source_key))]
    if ops.is_pic_info:
        original.append(_image_info_xml(state, data))
    original.append(_el("ETag", _quoted_etag(original_etag)))
    original.append("</OriginalInfo>")
    body_xml = (
        "<UploadResult>"
        + "".join(original)
        + ("<ProcessResults>" + "".join(objects) + "</ProcessResults>" if objects else "<ProcessResults/>")
        + "</UploadResult>"
    )
    return EmuResponse(200, body_xml.encode("utf-8"), {}, "application/xml")


def _image_info_xml(state: Any, data: bytes) -> str:
    info = imaging.probe(data)
    fmt = {"JPEG": "jpg", "MPO": "jpg"}.get(info.format, info.format.lower())
    if getattr(state.faults, "skip_pixel_work", False):
        ave = "0x000000"
    else:
        ave = imaging.average_colour(imaging.decode_image(data))
    return (
        "<ImageInfo>"
        + _el("Format", fmt)
        + _el("Width", info.width)
        + _el("Height", info.height)
        + _el("Quality", 100)
        + _el("Ave", ave)
        + _el("Orientation", 0)
        + "</ImageInfo>"
    )


def _check_image(data: bytes) -> None:
    try:
        imaging.probe(data)
    except imaging.ImageDecodeError:
        raise _not_an_image(data) from None


async def handle_pic_upload(state: Any, req: EmuRequest) -> EmuResponse:
    """PUT /<key> with Pic-Operations: store the original and each rule's result; answer UploadResult."""
    bucket = _require_bucket(state, req.bucket)
    if not req.key or req.key.endswith("/"):
        raise _bad(f"ObjectKey {req.key!r} is invalid for an image upload")
    ops = parse_pic_operations(state, req.headers.get("pic-operations"), bucket, req.key, upload=True)
    data = bytes(req.body)
    if ops.rules or ops.is_pic_info:
        _check_image(data)
    results = await _compute(state, data, ops)
    metadata = user_metadata(req.headers)  # as PutObject stores it
    content_type = req.headers.get("content-type") or None
    rec = state.store.put(bucket, req.key, data, content_type=content_type, metadata=metadata)
    return _store_and_answer(state, req, bucket, req.key, data, rec.etag, ops, results)


async def handle_image_process(state: Any, req: EmuRequest) -> EmuResponse:
    """POST /<key>?image_process with Pic-Operations: process a stored object, store the results."""
    bucket = _require_bucket(state, req.bucket)
    ops = parse_pic_operations(state, req.headers.get("pic-operations"), bucket, req.key)
    rec = _source_object(state, bucket, req.key)
    data = bytes(rec.data)
    if ops.is_pic_info:
        _check_image(data)
    results = await _compute(state, data, ops)
    return _store_and_answer(state, req, bucket, req.key, data, rec.etag, ops, results)
