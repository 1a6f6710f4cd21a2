"""COS object calls (head, get, download, put, upload, list, delete, copy, metadata) on cos-python-sdk-v5."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from airflow_provider_tencent_ci.common.times import parse_http_date, parse_iso_time
from airflow_provider_tencent_ci.common.xml import as_list
from airflow_provider_tencent_ci.exceptions import TencentCloudError, TencentCloudNotFoundError
from airflow_provider_tencent_ci.hooks.cos_base import CosClientHook
from airflow_provider_tencent_ci.validation import check_int_range, check_non_empty_str

_CHUNK = 1024 * 1024


def rewind_point(body: object) -> int | None:
    """Where a seekable body starts, so a retry can resend all of it (None for bytes and unseekable streams)."""
    return body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None


class CosObjectsHook(CosClientHook):
    """COS objects. Keys are object keys without a leading ``/``; buckets get ``-<appid>`` appended when missing."""

    def head_object(self, bucket: str, key: str) -> dict[str, Any] | None:
        """The object's headers (ETag, Content-Length, Content-Type, Last-Modified, x-cos-meta-*), None if absent."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        try:
            raw = self._call("HeadObject", lambda: self.get_conn().head_object(Bucket=bucket, Key=key))
        except TencentCloudNotFoundError:
            return None
        lower = {k.lower(): v for k, v in dict(raw).items()}
        out: dict[str, Any] = {
            "ETag": lower.get("etag"),
            "Content-Length": int(lower["content-length"]) if lower.get("content-length", "").isdigit() else None,
            "Content-Type": lower.get("content-type"),
            "Last-Modified": parse_http_date(lower.get("last-modified")),
        }
        out.update({k: v for k, v in lower.items() if k.startswith("x-cos-meta-")})
        return out

    def object_exists(self, bucket: str, key: str) -> bool:
        return self.head_object(bucket, key) is not None

    def get_object_bytes(self, bucket: str, key: str) -> bytes:
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)

        def once() -> bytes:
            body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
            return b"".join(body.get_stream(chunk_size=_CHUNK))

        return self._call("GetObject", once)

    def download_file(self, bucket: str, key: str, local_path: str | os.PathLike[str]) -> int:
        """Stream an object to ``local_path`` through a temp file in the same directory; returns bytes written."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        target = os.fspath(local_path)
        directory = os.path.dirname(os.path.abspath(target))

        def once() -> int:
            body = self.get_conn().get_object(Bucket=bucket, Key=key)["Body"]
            fd, tmp = tempfile.mkstemp(prefix=".download-", dir=directory)
            written = 0
            try:
                with os.fdopen(fd, "wb") as fp:
                    for chunk in body.get_stream(chunk_size=_CHUNK):
                        fp.write(chunk)
                        written += len(chunk)
                expected = len(body)
                if expected and written != expected:
                    raise TencentCloudError(
                        f"download of {key!r} was cut short ({written} of {expected} bytes)", operation="GetObject"
                    )
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            return written

        return self._call("GetObject", once)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | str | BinaryIO,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        kwargs: dict[str, Any] = {}
        if content_type:
            kwargs["ContentType"] = content_type
        if metadata:
            kwargs["Metadata"] = meta_headers(metadata)
        start = rewind_point(body)

        def once() -> dict[str, Any]:
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]  # a retry must resend the whole body
            return dict(self.get_conn().put_object(Bucket=bucket, Body=body, Key=key, **kwargs))

        headers = self._call("PutObject", once)
        lower = {k.lower(): v for k, v in headers.items()}
        return {"ETag": lower.get("etag"), "RequestId": lower.get("x-cos-request-id"), "Headers": headers}

    def upload_file(
        self,
        bucket: str,
        key: str,
        local_path: str | os.PathLike[str],
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        with open(local_path, "rb") as fp:
            return self.put_object(bucket, key, fp, content_type=content_type, metadata=metadata)

    def list_objects(
        self, bucket: str, prefix: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every object under ``prefix`` (all pages)."""
        bucket = self.bucket_name(bucket)
        max_keys = check_int_range("max_keys", max_keys, 1, 1000)
        marker = ""
        while True:
            page_marker = marker
            data = self._call(
                "ListObjects",
                lambda m=page_marker: self.get_conn().list_objects(  # type: ignore[misc]
                    Bucket=bucket, Prefix=prefix, Delimiter=delimiter, Marker=m, MaxKeys=max_keys
                ),
            )
            contents = [c for c in as_list(data.get("Contents")) if isinstance(c, dict)]
            for item in contents:
                size = item.get("Size")
                yield {
                    "Key": item.get("Key"),
                    "ETag": item.get("ETag"),
                    "Size": int(size) if isinstance(size, str) and size.isdigit() else size,
                    "LastModified": parse_iso_time(item.get("LastModified")),
                }
            if str(data.get("IsTruncated", "false")).lower() != "true":
                return
            marker = data.get("NextMarker") or (contents[-1]["Key"] if contents else "")
            if not marker or marker == page_marker:
                return

    def delete_object(self, bucket: str, key: str) -> None:
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        self._call("DeleteObject", lambda: self.get_conn().delete_object(Bucket=bucket, Key=key))

    def _copy_source(self, bucket: str, key: str) -> dict[str, str]:
        source: dict[str, str] = {"Bucket": bucket, "Key": key}
        if self.config.cos_endpoint:
            source["Endpoint"] = self.config.cos_endpoint
        else:
            source["Region"] = self.require_region()
        return source

    @staticmethod
    def _copy_result(data: Mapping[str, Any]) -> dict[str, Any]:
        lower = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
        return {
            "ETag": data.get("ETag"),
            "LastModified": data.get("LastModified"),
            "RequestId": lower.get("x-cos-request-id"),
        }

    def copy_object(self, src_bucket: str, src_key: str, dest_bucket: str, dest_key: str) -> dict[str, Any]:
        src_bucket = self.bucket_name(src_bucket)
        dest_bucket = self.bucket_name(dest_bucket)
        check_non_empty_str("src_key", src_key)
        check_non_empty_str("dest_key", dest_key)
        source = self._copy_source(src_bucket, src_key)
        data = self._call(
            "CopyObject",
            lambda: self.get_conn().copy_object(Bucket=dest_bucket, Key=dest_key, CopySource=source),
        )
        return self._copy_result(data)

    def replace_metadata(
        self,
        bucket: str,
        key: str,
        metadata: Mapping[str, str],
        *,
        content_type: str | None = None,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        """Replace an object's user metadata by copying it onto itself (PUT Object - Copy, cn 436/10881).

        The doc: a copy onto itself must say ``x-cos-metadata-directive: Replaced`` (the request's headers become
        the object's metadata, Content-Type included, so it is sent again when known); with
        ``x-cos-copy-source-If-Match`` the copy happens only while the object's ETag is ``if_match``, else 412
        (raised as :class:`TencentCloudPreconditionFailedError`: the object was replaced since that ETag was seen).
        The bytes are unchanged, so a retried copy that had already succeeded still matches its ETag.
        """
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        kwargs: dict[str, Any] = {"Metadata": meta_headers(metadata)}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_match:
            kwargs["CopySourceIfMatch"] = '"' + if_match.strip('"') + '"'
        source = self._copy_source(bucket, key)
        data = self._call(
            "CopyObject",
            lambda: self.get_conn().copy_object(
                Bucket=bucket, Key=key, CopySource=source, CopyStatus="Replaced", **kwargs
            ),
        )
        return self._copy_result(data)


def meta_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    """User metadata as ``x-cos-meta-*`` headers (the SDK's ``Metadata`` argument)."""
    return {(k if k.lower().startswith("x-cos-meta-") else f"x-cos-meta-{k}"): str(v) for k, v in metadata.items()}
