"""What every service handler speaks: the request/response pair, the two error families, and bucket host names.

Contract with the service handlers (cos, ci_image, bda, jobs): every handler is
``async def handle_x(state, req: EmuRequest) -> EmuResponse`` and raises :class:`CosError` (COS/CI XML errors) or
:class:`TcApiError` (API 3.0 JSON errors). This module depends on nothing else in the emulator, so the handler
modules and ``core`` (which builds the shared state) can both import it without importing each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# <bucket>-<appid>.cos.<region>.myqcloud.com (objects, image processing) and .ci. (jobs)
BUCKET_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9-]+-\d+)\.(?P<svc>cos|ci)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")


def cos_bucket_of_host(host: str) -> str | None:
    """The bucket a COS object host names, or None for any other host."""
    m = BUCKET_HOST_RE.match(host.lower())
    return m.group("bucket") if m and m.group("svc") == "cos" else None


@dataclass
class EmuRequest:
    method: str  # upper-case
    host: str  # Host header without port
    service: str  # "cos" | "ci" | "bda" | "service" (service.cos.myqcloud.com)
    bucket: str | None  # "name-appid" for cos/ci hosts
    region: str | None
    path: str  # decoded path, leading "/"
    key: str  # object key = path without the leading "/"
    query: dict[str, str]  # decoded; flag params (e.g. "image_process", "cancel") map to ""
    headers: dict[str, str]  # lower-case names
    body: bytes
    secret_id: str | None  # the verified credential's SecretId
    request_id: str  # generated per request, also sent as x-cos-request-id / x-ci-request-id / RequestId


@dataclass
class EmuResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/xml"


class CosError(Exception):
    """A COS/CI error, rendered as XML ``<Error>`` with Code, Message, Resource and RequestId (all four:
    the SDK reports "Unknown" for every field when one is missing)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TcApiError(Exception):
    """An API 3.0 error: HTTP 200, JSON ``{"Response": {"Error": {"Code", "Message"}, "RequestId"}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
