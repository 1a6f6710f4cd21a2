"""Shared types of the emulator: request/response, the two error families, and the state object.

Contract with the service handlers (imaging, ci_image, bda, jobs): every handler is
``async def handle_x(state: EmulatorState, req: EmuRequest) -> EmuResponse`` and raises
:class:`CosError` (COS/CI XML errors) or :class:`TcApiError` (API 3.0 JSON errors).
This package must not import anything else from ``airflow_provider_tencent_ci`` nor airflow.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .faults import FaultInjector
from .stats import Stats
from .store import ObjectStore

DEFAULT_APPID = "1250000000"
DEFAULT_REGION = "ap-guangzhou"
DEFAULT_SECRET_ID = "AKIDEMULATOR00000000000000000000000"
DEFAULT_SECRET_KEY = "emulator-secret-key-0000000000"
STS_SECRET_ID = "AKIDEMULATORSTS000000000000000000000"
STS_SECRET_KEY = "emulator-sts-secret-key-000000"
STS_TOKEN = "emulator-session-token-000000000000"
BDA_HOST = "bda.tencentcloudapi.com"
# <bucket>-<appid>.cos.<region>.myqcloud.com (objects, image processing) and .ci. (jobs)
BUCKET_HOST_RE = re.compile(r"^(?P<bucket>[a-z0-9-]+-\d+)\.(?P<svc>cos|ci)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$")


def cos_bucket_of_host(host: str) -> str | None:
    """The bucket a COS object host names, or None for any other host."""
    m = BUCKET_HOST_RE.match(host.lower())
    return m.group("bucket") if m and m.group("svc") == "cos" else None


def read_own_object(state: EmulatorState, url: str) -> bytes | None:
    """The emulator has no network: a URL can only be "downloaded" when it names one of its own COS objects.

    Returns None for any other (well-formed) URL; raises ValueError when ``url`` is not an http(s) URL.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or " " in url:
        raise ValueError(url)
    bucket = cos_bucket_of_host(parts.hostname)
    key = unquote(parts.path.lstrip("/"))
    if bucket and key and state.store.has_bucket(bucket):
        rec = state.store.get(bucket, key)
        if rec is not None:
            return bytes(rec.data)
    return None


@dataclass
class Credential:
    """A credential the emulator accepts. ``token`` set means an STS credential: the token is required."""

    secret_id: str
    secret_key: str
    token: str | None = None


def default_credentials() -> list[Credential]:
    return [
        Credential(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY),
        Credential(STS_SECRET_ID, STS_SECRET_KEY, STS_TOKEN),
    ]


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


class EmulatorState:
    """Everything the handlers share. One instance per running emulator."""

    def __init__(
        self,
        *,
        appid: str = DEFAULT_APPID,
        default_region: str = DEFAULT_REGION,
        data_dir: Path | str | None = None,
        credentials: list[Credential] | None = None,
        faults: Any = None,
        bda_hosts: tuple[str, ...] = (BDA_HOST,),
    ) -> None:
        self.appid = appid
        self.default_region = default_region
        self.data_dir: Path | None = Path(data_dir) if data_dir is not None else None
        self.store = ObjectStore(self.data_dir / "objects" if self.data_dir is not None else None)
        self.stats = Stats()
        self.faults = FaultInjector(faults)
        self.credentials: dict[str, Credential] = {
            c.secret_id: c for c in (credentials if credentials is not None else default_credentials())
        }
        self.bda_hosts = {h.lower() for h in bda_hosts}
        # Allowed clock skew for signed requests (the services accept about 15 minutes for TC3 / key-time starts).
        self.max_skew_seconds = 900
        self.jobs: Any = _make_job_engine(self)

    def new_request_id(self) -> str:
        # Same general shape as real ids (base64-ish, opaque); uniqueness is what matters.
        return uuid.uuid4().hex[:24].upper() + os.urandom(4).hex()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def reset(self) -> None:
        """Forget objects (buckets stay), jobs, stats and faults."""
        self.store.clear()
        self.stats.reset()
        self.faults.reset()
        reset = getattr(self.jobs, "reset", None)
        if callable(reset):
            reset()

    def full_bucket(self, name: str) -> str:
        """``name`` with ``-<appid>`` appended unless already suffixed with an APPID."""
        tail = name.rsplit("-", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return name
        return f"{name}-{self.appid}"


class _NoJobEngine:
    """Stand-in while the job engine module is unavailable: job endpoints answer 501."""

    available = False

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def reset(self) -> None:
        return None


def _make_job_engine(state: EmulatorState) -> Any:
    try:
        from .jobs import JobEngine
    except ImportError:
        return _NoJobEngine(state)
    return JobEngine(state)
