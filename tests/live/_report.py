"""What the live smoke prints: findings a user can paste into an issue, with nothing secret in them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_tencent_ci.common.xml import XmlParseError, parse_xml

# Presigned-URL and signature fields (COS q-sign), also when percent-encoded once or more inside another URL.
_SIGNED_FIELD = re.compile(
    r"(q-(?:ak|signature|sign-time|key-time|url-param-list|header-list))(=|%(?:25)*3D)[^&\s<\"']*"
)
# Headers whose values identify the user's endpoint or carry credentials.
HIDDEN_HEADERS = frozenset({"host", "authorization", "cookie", "x-forwarded-host", "x-original-host"})


def redact(text: str, *secrets: str) -> str:
    """``text`` without the given strings (raw or percent-encoded up to three times) nor q-sign fields."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        variant = secret
        for _ in range(4):
            text = text.replace(variant, "<redacted>")
            variant = quote(variant, safe="")
    return _SIGNED_FIELD.sub(r"\1\2<redacted>", text)


def shape(value: Any) -> Any:
    """The structure of a parsed document: keys kept, scalars replaced by their type, lists by their length."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return {f"<list of {len(value)}>": shape(value[0]) if value else None}
    return type(value).__name__


def body_shape(body: bytes) -> tuple[str, Any]:
    """(format, shape) of a callback body, read by what it is (JSON or XML), not by its Content-Type."""
    text = body.strip()
    if not text:
        return "empty", None
    try:
        return "JSON", shape(json.loads(text))
    except ValueError:
        pass
    try:
        return "XML", shape(parse_xml(text))
    except XmlParseError:
        return "unreadable", text[:80].decode("utf-8", "replace")


def header_lines(headers: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{name}: {'<hidden>' if name.lower() in HIDDEN_HEADERS else value}" for name, value in headers]


def emit(capsys: pytest.CaptureFixture[str], title: str, lines: Iterable[str]) -> None:
    """Print a finding past pytest's capture, so ``pytest -m live tests/live`` shows it without ``-s``."""
    with capsys.disabled():
        print(f"\n=== tencent-ci live smoke: {title} ===")
        for line in lines:
            print(f"  {line}")
