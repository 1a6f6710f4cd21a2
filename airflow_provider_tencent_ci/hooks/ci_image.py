"""CI image processing: download mode (``ci-process``), upload mode (PUT with Pic-Operations), cloud mode
(``image_process``), on cos-python-sdk-v5 (seed docs of AIPortraitMatting, GoodsMatting, AIFaceBeauty)."""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import requests
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_comm import format_values

from airflow_provider_tencent_ci.common.xml import as_list, parse_xml
from airflow_provider_tencent_ci.hooks.cos_base import CosClientHook
from airflow_provider_tencent_ci.hooks.cos_objects import meta_headers, rewind_point
from airflow_provider_tencent_ci.validation import check_non_empty_str

# Leading bytes of the image formats CI reads (the formats the seed docs list), checked before the file name.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
_SNIFF_BYTES = 16


def image_content_type(name: str, head: bytes) -> str:
    """The Content-Type of an image body: from its magic bytes, else from its name, else octet-stream."""
    for magic, ctype in _MAGIC:
        if head.startswith(magic):
            return ctype
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def _peek(body: bytes | BinaryIO) -> bytes:
    if isinstance(body, (bytes, bytearray)):
        return bytes(body[:_SNIFF_BYTES])
    start = rewind_point(body)
    if start is None:
        return b""
    head = body.read(_SNIFF_BYTES)
    body.seek(start)
    return head if isinstance(head, bytes) else b""


class CIProcessResponse:
    """A streamed ``ci-process`` result. Close it (or use it as a context manager) when done."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.headers: dict[str, str] = {k.lower(): v for k, v in response.headers.items()}

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-cos-request-id") or self.headers.get("x-ci-request-id")

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    def iter_chunks(self, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
        for chunk in self._response.iter_content(chunk_size=chunk_size):
            if chunk:
                yield chunk

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def data(self) -> Any:
        """The parsed document when CI answered XML/JSON instead of an image (consumes the body)."""
        ctype = (self.content_type or "").split(";")[0].strip().lower()
        body = self.read()
        if ctype == "application/json":
            return json.loads(body or b"null")
        if ctype in ("application/xml", "text/xml"):
            return parse_xml(body)
        return body

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> CIProcessResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def normalise_upload_result(headers: Mapping[str, str], data: Any) -> dict[str, Any]:
    """An UploadResult (upload and cloud mode) as {OriginalInfo, ProcessResults: [Object...], RequestId}."""
    data = dict(data or {})
    if "UploadResult" in data and isinstance(data["UploadResult"], dict):
        data = dict(data["UploadResult"])
    results = data.get("ProcessResults")
    objects: list[dict[str, Any]] = []
    if isinstance(results, dict):
        objects = [o for o in as_list(results.get("Object")) if isinstance(o, dict)]
    elif isinstance(results, list):  # tolerate a list of {"Object": ...}
        for item in results:
            if isinstance(item, dict):
                objects.extend(o for o in as_list(item.get("Object", item)) if isinstance(o, dict))
    for obj in objects:
        if isinstance(obj.get("Size"), str) and obj["Size"].isdigit():
            obj["Size"] = int(obj["Size"])
    lower = {k.lower(): v for k, v in dict(headers).items()}
    return {
        "OriginalInfo": data.get("OriginalInfo") if isinstance(data.get("OriginalInfo"), dict) else {},
        "ProcessResults": objects,
        "RequestId": lower.get("x-cos-request-id") or lower.get("x-ci-request-id"),
    }


class CIImageHook(CosClientHook):
    """CI image processing in its three modes."""

    def ci_process(
        self,
        bucket: str,
        key: str,
        ci_process: str,
        params: Mapping[str, Any] | None = None,
        detect_url: str | None = None,
    ) -> CIProcessResponse:
        """GET ``/<key>?ci-process=...`` (download mode); the result body is streamed."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("ci_process", ci_process)
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        if detect_url:
            query["detect-url"] = detect_url
            key = key or "/"
        check_non_empty_str("key", key)

        def once() -> CIProcessResponse:
            # Same request as CosS3Client.ci_process, but keeping the requests.Response: the SDK decides
            # between image/XML/JSON with a case-sensitive header lookup and drops the response otherwise.
            client = self.get_conn()
            sent = format_values({"ci-process": ci_process, **query})
            response = client.send_request(
                method="GET",
                url=client.get_conf().uri(bucket=bucket, path=key),
                bucket=bucket,
                auth=CosS3Auth(client.get_conf(), key, params=sent),
                stream=True,
                params=sent,
                headers={},
            )
            return CIProcessResponse(response)

        return self._call("CIProcess", once)

    def put_object_with_pic_operations(
        self,
        bucket: str,
        key: str,
        body_or_path: bytes | str | os.PathLike[str] | BinaryIO,
        pic_operations: Mapping[str, Any],
        metadata: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """PUT with a ``Pic-Operations`` header (upload mode). ``str``/path arguments name a local file.

        The PUT carries the source image's Content-Type (CI common headers, cn 460/42865: required for a PUT
        with a body), found from the image's leading bytes, else from the file name or key. ``metadata`` becomes the
        original's ``x-cos-meta-*`` (CI's results are written without it).
        """
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        ops = json.dumps(pic_operations, separators=(",", ":"))
        meta = {"Metadata": meta_headers(metadata)} if metadata else {}
        if isinstance(body_or_path, (str, os.PathLike)):
            with open(body_or_path, "rb") as fp:
                return self._pic_put(bucket, key, fp, ops, os.fspath(body_or_path), meta)
        return self._pic_put(bucket, key, body_or_path, ops, key, meta)

    def _pic_put(
        self, bucket: str, key: str, body: bytes | BinaryIO, ops: str, name: str, meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        start = rewind_point(body)
        content_type = image_content_type(name, _peek(body))

        def once() -> dict[str, Any]:
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]
            headers, data = self.get_conn().ci_put_object(
                Bucket=bucket, Body=body, Key=key, PicOperations=ops, ContentType=content_type, **meta
            )
            return normalise_upload_result(headers, data)

        return self._call("PicOperationsUpload", once)

    def image_process(self, bucket: str, key: str, pic_operations: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/<key>?image_process`` (cloud mode: source and results in COS)."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        ops = json.dumps(pic_operations, separators=(",", ":"))

        def once() -> dict[str, Any]:
            headers, data = self.get_conn().ci_image_process(Bucket=bucket, Key=key, PicOperations=ops)
            return normalise_upload_result(headers, data)

        return self._call("ImageProcess", once)
