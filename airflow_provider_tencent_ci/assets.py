"""The ``tencentci://`` asset URI scheme, registered under ``asset-uris`` in the provider info.

``tencentci://<bucket>/<path>`` names something in one bucket: an object prefix or, as in the event pipeline
example, ``jobs/<Tag>`` for the CI jobs of one kind. Airflow calls :func:`sanitize_uri` on every such URI when an
``Asset`` is created, so a malformed URI fails at DAG parse time with a readable message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult

SCHEME = "tencentci"
# COS bucket names are <name>-<APPID>: lowercase letters, digits and hyphens, the APPID numeric.
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+$")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """Check a ``tencentci://`` URI (Airflow passes it already split, with trailing slashes removed)."""
    if not _BUCKET.match(uri.netloc):
        raise ValueError(
            f"tencentci:// asset URI {uri.geturl()!r}: the host must be the full bucket name <name>-<APPID> "
            "(lowercase letters, digits, hyphens), e.g. tencentci://examplebucket-1250000000/jobs/SegmentVideoBody"
        )
    if uri.path in ("", "/"):
        raise ValueError(
            f"tencentci:// asset URI {uri.geturl()!r}: a path in the bucket is required, e.g. /jobs/SegmentVideoBody"
        )
    return uri


def create_asset(bucket: str, path: str, *, name: str | None = None, extra: dict[str, Any] | None = None) -> Any:
    """An ``Asset`` for ``tencentci://<bucket>/<path>`` (the ``factory`` of the scheme)."""
    from airflow.sdk import Asset

    uri = f"{SCHEME}://{bucket}/{path.lstrip('/')}"
    return Asset(uri=uri, name=name or uri, extra=extra or {})
