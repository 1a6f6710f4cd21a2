"""The emulator's shared state object, its default credentials, and the request/response types handlers use.

The request/response and error types live in :mod:`.protocol` (re-exported here, where the other modules have always
imported them from). Handlers are ``async def handle_x(state: EmulatorState, req: EmuRequest) -> EmuResponse``.
This package must not import anything else from ``airflow_provider_tencent_ci`` nor airflow.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .faults import FaultInjector
from .jobs import JobEngine
from .protocol import BUCKET_HOST_RE as BUCKET_HOST_RE  # re-exported: handlers import these from core
from .protocol import CosError as CosError
from .protocol import EmuRequest as EmuRequest
from .protocol import EmuResponse as EmuResponse
from .protocol import TcApiError as TcApiError
from .protocol import cos_bucket_of_host
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
        self.jobs = JobEngine(store=self.store, faults=self.faults, clock=self.now, data_dir=self.data_dir)

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
        self.jobs.reset()

    def full_bucket(self, name: str) -> str:
        """``name`` with ``-<appid>`` appended unless already suffixed with an APPID."""
        tail = name.rsplit("-", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return name
        return f"{name}-{self.appid}"
