"""Tiny XML writer for COS/CI replies (dicts, lists, scalars -> elements)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from xml.sax.saxutils import escape

XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _render(name: str, value: Any, out: list[str]) -> None:
    if isinstance(value, list):
        for item in value:  # repeated element
            _render(name, item, out)
        return
    if isinstance(value, dict):
        out.append(f"<{name}>")
        for k, v in value.items():
            _render(k, v, out)
        out.append(f"</{name}>")
        return
    if value is None:
        out.append(f"<{name}/>")
        return
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    out.append(f"<{name}>{escape(text)}</{name}>")


def to_xml(root: str, value: dict[str, Any]) -> bytes:
    out: list[str] = [XML_DECL]
    _render(root, value, out)
    return "".join(out).encode("utf-8")


def iso8601(dt: datetime) -> str:
    """COS listing time format: 2019-05-24T11:01:46.000Z."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def http_date(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
