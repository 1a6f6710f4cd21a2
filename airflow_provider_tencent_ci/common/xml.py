"""Safe XML to dict, for everything the provider reads from the network (CI replies and CI callbacks).

defusedxml refuses entity declarations and external references (billion laughs, XXE). Depth is bounded so a
hostile document fails as a parse error instead of a RecursionError. Leaves become stripped strings (empty
elements become ``""``), namespaces are dropped, and a repeated element becomes a list, as CI's XML is read by
cos-python-sdk-v5 (xmltodict) and cos-go-sdk-v5 (encoding/xml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

# CI's documents nest a handful of levels (Response/JobsDetail/Operation/MediaResult/OutputFile/...).
MAX_DEPTH = 32


class XmlParseError(ValueError):
    """The bytes are not a well-formed, safe XML document of the expected shape."""


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def element_to_obj(elem: Element, depth: int = 0) -> Any:
    """An element as a string (leaf) or a dict of its children (repeated children as lists)."""
    if depth > MAX_DEPTH:
        raise XmlParseError(f"XML nested deeper than {MAX_DEPTH} levels")
    children = list(elem)
    if not children:
        return (elem.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        name = _local_name(child.tag)
        value = element_to_obj(child, depth + 1)
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out


def parse_xml(data: bytes, *, root: str | None = None) -> dict[str, Any]:
    """Parse a document into a dict of its root's children ({} for an empty body).

    :param root: when given, the root element must have this (local) name.
    :raises XmlParseError: malformed, unsafe (entities, external references), too deep, or the wrong root.
    """
    if not data.strip():
        return {}
    try:
        element = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as err:
        raise XmlParseError(f"invalid XML: {err}") from None
    if root is not None and _local_name(element.tag) != root:
        raise XmlParseError(f"unexpected XML root {_local_name(element.tag)!r} (expected {root!r})")
    obj = element_to_obj(element)
    return obj if isinstance(obj, dict) else {}


def unwrap_response(doc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The body of a ``{"Response": {...}}`` envelope (JSON answers and callbacks), or the document itself."""
    doc = doc or {}
    inner = doc.get("Response")
    return inner if isinstance(inner, Mapping) else doc


def as_list(value: Any) -> list[Any]:
    """A repeated element as a list: absent or empty -> [], one element -> [it]."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]
