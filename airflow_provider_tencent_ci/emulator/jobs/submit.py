"""SubmitJob request parsing: a ``<Request>`` body checked against every documented SegmentVideoBody rule.

Rules and names come from the submit page (seed ci-segment-video-body-submit-job.txt); errors are CI's
``400 InvalidArgument`` (``MalformedXML`` for a body that is not XML) with a message naming the parameter, the
value and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET

from ..protocol import CosError, cos_bucket_of_host
from ..store import ObjectStore
from .facts import (
    CALLBACK_FORMATS,
    CALLBACK_TYPES,
    COLOUR_PARAMS,
    JOB_LEVELS,
    MODES,
    MQ_MODES,
    SEGMENT_TYPES,
    SVB_ORDER,
    TAG,
    USER_DATA_MAX,
)
from .record import CallbackConfig


@dataclass
class SubmitSpec:
    """A validated request: the JobsDetail Input and Operation it renders, and its callback settings."""

    input: dict[str, str]
    operation: dict[str, Any]
    callback: CallbackConfig


def bad_argument(message: str) -> CosError:
    return CosError(400, "InvalidArgument", message)


def _child(el: Element | None, name: str) -> Element | None:
    return None if el is None else el.find(name)


def _text(el: Element | None, name: str) -> str | None:
    c = _child(el, name)
    if c is None:
        return None
    return (c.text or "").strip()


def _check_int(name: str, value: str, lo: int, hi: int) -> str:
    if not re.fullmatch(r"\d{1,6}", value) or not lo <= int(value) <= hi:
        raise bad_argument(f"{name}={value!r} is invalid: must be an integer within [{lo}, {hi}]")
    return str(int(value))


def logo_source(store: ObjectStore, bucket: str, value: str) -> tuple[str, str]:
    """BackgroundLogoUrl must name an object in the source bucket: a URL of that bucket or a plain key."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", value, re.I):
        parts = urlsplit(value)
        url_bucket = cos_bucket_of_host(parts.hostname or "")
        if parts.scheme.lower() not in ("http", "https") or not url_bucket:
            raise bad_argument(
                f"BackgroundLogoUrl={value!r} is invalid: must be a COS URL in the source bucket {bucket}"
            )
        if url_bucket != bucket:
            raise bad_argument(
                f"BackgroundLogoUrl={value!r} is invalid: the background file must be in the same bucket as the "
                f"source ({bucket})"
            )
        key = unquote(parts.path.lstrip("/"))
    else:
        key = value.lstrip("/")
    if not key or store.get(bucket, key) is None:
        raise bad_argument(f"BackgroundLogoUrl={value!r}: the background file does not exist in bucket {bucket}")
    return bucket, key


def parse_submit(store: ObjectStore, body: bytes, bucket: str, region: str) -> SubmitSpec:
    """Validate a ``<Request>`` (refusing what the cloud refuses) and return what the new job is made of."""
    if not body.strip():
        raise CosError(400, "MalformedXML", "the request body is empty")
    try:
        root = SafeET.fromstring(body)
    except Exception as exc:  # defusedxml raises ParseError or its own DefusedXmlException subclasses
        raise CosError(400, "MalformedXML", f"the request body is not well-formed XML: {exc}") from None
    if root.tag != "Request":
        raise CosError(400, "MalformedXML", f"the root element must be <Request>, got <{root.tag}>")
    tag = _text(root, "Tag")
    if tag != TAG:
        raise bad_argument(f"Tag={tag!r} is invalid: must be {TAG}")
    inp = _child(root, "Input")
    obj = _text(inp, "Object")
    if not obj:
        raise bad_argument("Input.Object is required")
    obj = obj.lstrip("/")
    if store.get(bucket, obj) is None:
        raise bad_argument(f"Input.Object={obj!r} does not exist in bucket {bucket}")
    op = _child(root, "Operation")
    if op is None:
        raise bad_argument("Operation is required")
    svb_el = _child(op, "SegmentVideoBody")
    svb: dict[str, str] = {}
    if svb_el is not None:
        for name in SVB_ORDER:
            val = _text(svb_el, name)
            if val is None or (val == "" and name != "BackgroundLogoUrl"):
                continue
            svb[name] = val
    mode = svb.get("Mode", "Mask")
    if mode not in MODES:
        raise bad_argument(f"SegmentVideoBody.Mode={mode!r} is invalid: must be one of {', '.join(MODES)}")
    seg_type = svb.get("SegmentType", "HumanSeg")
    if seg_type not in SEGMENT_TYPES:
        raise bad_argument(
            f"SegmentVideoBody.SegmentType={seg_type!r} is invalid: must be one of {', '.join(SEGMENT_TYPES)}"
        )
    for name in COLOUR_PARAMS:
        if name in svb:
            svb[name] = _check_int(f"SegmentVideoBody.{name}", svb[name], 0, 255)
    logo = svb.get("BackgroundLogoUrl")
    if mode == "Combination" and not logo:
        raise bad_argument("SegmentVideoBody.BackgroundLogoUrl is required when Mode is Combination")
    if logo:
        logo_source(store, bucket, logo)
    if not svb:
        svb = {"Mode": "Mask"}
    out_el = _child(op, "Output")
    if out_el is None:
        raise bad_argument("Operation.Output is required")
    output: dict[str, str] = {}
    for name in ("Region", "Bucket", "Object"):
        val = _text(out_el, name)
        if not val:
            raise bad_argument(f"Operation.Output.{name} is required")
        output[name] = val
    if output["Object"].endswith("/"):
        raise bad_argument(f"Operation.Output.Object={output['Object']!r} is invalid: must not end with '/'")
    if not store.has_bucket(output["Bucket"]):
        raise bad_argument(f"Operation.Output.Bucket={output['Bucket']!r} does not exist")
    user_data = _text(op, "UserData")
    if user_data is not None:
        if len(user_data) > USER_DATA_MAX:
            raise bad_argument(
                f"Operation.UserData is {len(user_data)} characters; at most {USER_DATA_MAX} are allowed"
            )
        if any(not 32 <= ord(ch) <= 126 for ch in user_data):
            raise bad_argument("Operation.UserData must be printable ASCII")
    level = _text(op, "JobLevel") or "0"
    if level not in JOB_LEVELS:
        raise bad_argument(f"Operation.JobLevel={level!r} is invalid: must be one of 0, 1, 2")
    fmt = _text(root, "CallBackFormat") or "XML"
    if fmt not in CALLBACK_FORMATS:
        raise bad_argument(f"CallBackFormat={fmt!r} is invalid: must be JSON or XML")
    cb_type = _text(root, "CallBackType") or "Url"
    if cb_type not in CALLBACK_TYPES:
        raise bad_argument(f"CallBackType={cb_type!r} is invalid: must be Url or TDMQ")
    mq: dict[str, str] | None = None
    if cb_type == "TDMQ":
        mq_el = _child(root, "CallBackMqConfig")
        if mq_el is None:
            raise bad_argument("CallBackMqConfig is required when CallBackType is TDMQ")
        mq = {}
        for name in ("MqRegion", "MqMode", "MqName"):
            val = _text(mq_el, name)
            if not val:
                raise bad_argument(f"CallBackMqConfig.{name} is required when CallBackType is TDMQ")
            mq[name] = val
        if mq["MqMode"] not in MQ_MODES:
            raise bad_argument(f"CallBackMqConfig.MqMode={mq['MqMode']!r} is invalid: must be Queue or Topic")
    callback = _text(root, "CallBack") or None
    if callback is not None and callback != "no" and cb_type == "Url":
        parts = urlsplit(callback)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise bad_argument(f"CallBack={callback!r} is invalid: must be an http(s) URL or 'no'")
    operation: dict[str, Any] = {"SegmentVideoBody": svb}
    if user_data is not None:
        operation["UserData"] = user_data
    operation["JobLevel"] = level
    operation["Output"] = output
    return SubmitSpec(
        input={"BucketId": bucket, "Object": obj, "Region": region},
        operation=operation,
        callback=CallbackConfig(url=callback, format=fmt, type=cb_type, mq=mq),
    )
