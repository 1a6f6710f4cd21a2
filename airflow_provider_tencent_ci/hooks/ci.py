"""CIHook: COS objects, CI image processing and CI jobs on cos-python-sdk-v5, plus async job calls on httpx.

The sync calls use one ``CosS3Client(conf, retry=0)`` per hook (our retry policy is the only retry loop). The
async job calls (``aget_jobs``, ``alist_jobs``, ``acancel_job``) send the same requests with httpx, signed by the
SDK's own signer (``CosS3Client.get_auth``), so triggers never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element

import httpx
import requests
import requests.adapters
from defusedxml import ElementTree as DefusedET
from qcloud_cos import CosS3Client
from qcloud_cos.cos_auth import CosS3Auth
from qcloud_cos.cos_comm import format_values

from airflow_provider_tencent_ci.constants import (
    IMAGE_MAX_CONCURRENCY_LIMIT,
    JOB_LIST_MAX_SIZE,
    JOB_QUERY_BATCH_DEFAULT,
)
from airflow_provider_tencent_ci.exceptions import (
    ParameterValidationError,
    TencentCloudError,
    TencentCloudNotFoundError,
)
from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
from airflow_provider_tencent_ci.hooks.credentials import Credentials
from airflow_provider_tencent_ci.hooks.retry import make_error
from airflow_provider_tencent_ci.validation import check_choice, check_int_range, check_non_empty_str

_CHUNK = 1024 * 1024
_CI_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass
class JobsQuery:
    """Answer of a job query: the JobsDetail found and the ids CI reported as non-existent."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class JobsPage:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    next_token: str = ""


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


# ---- XML helpers (async path; defused parser) -----------------------------------------------------------------
def _strip_ns(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element_to_obj(elem: Element) -> Any:
    children = list(elem)
    if not children:
        return elem.text
    out: dict[str, Any] = {}
    for child in children:
        name = _strip_ns(child.tag)
        value = _element_to_obj(child)
        if name in out:
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(value)
        else:
            out[name] = value
    return out


def parse_xml(data: bytes) -> dict[str, Any]:
    """Parse a CI XML answer with defusedxml into a dict (the root element's children)."""
    if not data.strip():
        return {}
    root = DefusedET.fromstring(data)
    obj = _element_to_obj(root)
    return obj if isinstance(obj, dict) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    return [value]


def _missing_ids(value: Any) -> list[str]:
    out: list[str] = []
    for item in _as_list(value):
        if isinstance(item, str):
            out.extend(x.strip() for x in item.split(",") if x.strip())
    return out


def _jobs_detail(data: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    data = data or {}
    if "Response" in data and isinstance(data["Response"], dict):
        data = data["Response"]
    return [j for j in _as_list(data.get("JobsDetail")) if isinstance(j, dict)]


def _ci_time(param: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ParameterValidationError(param, value, "must be timezone-aware")
        return value.strftime(_CI_TIME_FORMAT)
    if isinstance(value, str):
        return value
    raise ParameterValidationError(param, value, "must be a datetime or a string like 2001-01-01T00:00:00+0800")


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _iso_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _normalise_upload_result(headers: Mapping[str, str], data: Any) -> dict[str, Any]:
    data = dict(data or {})
    if "UploadResult" in data and isinstance(data["UploadResult"], dict):
        data = dict(data["UploadResult"])
    results = data.get("ProcessResults")
    objects: list[dict[str, Any]] = []
    if isinstance(results, dict):
        objects = [o for o in _as_list(results.get("Object")) if isinstance(o, dict)]
    elif isinstance(results, list):  # tolerate a list of {"Object": ...}
        for item in results:
            if isinstance(item, dict):
                objects.extend(o for o in _as_list(item.get("Object", item)) if isinstance(o, dict))
    for obj in objects:
        if isinstance(obj.get("Size"), str) and obj["Size"].isdigit():
            obj["Size"] = int(obj["Size"])
    lower = {k.lower(): v for k, v in dict(headers).items()}
    return {
        "OriginalInfo": data.get("OriginalInfo") if isinstance(data.get("OriginalInfo"), dict) else {},
        "ProcessResults": objects,
        "RequestId": lower.get("x-cos-request-id") or lower.get("x-ci-request-id"),
    }



_SESSIONS: dict[int, requests.Session] = {}


def _http_session() -> requests.Session:
    """One connection pool per process, sized for the batch path's largest concurrency.

    The SDK's built-in pool holds 10 connections, fewer than ``max_concurrency`` allows, so a busy batch would
    open and drop connections ("Connection pool is full"). Keyed by pid: a forked task process gets its own.
    """
    pid = os.getpid()
    session = _SESSIONS.get(pid)
    if session is None:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=IMAGE_MAX_CONCURRENCY_LIMIT)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _SESSIONS[pid] = session
    return session

class CIHook(TencentCloudBaseHook):
    """COS objects, CI image processing and CI jobs. See ARCHITECTURE.md for the contract."""

    hook_name = "Tencent Cloud"

    def __init__(
        self,
        tencentcloud_conn_id: str = TencentCloudBaseHook.default_conn_name,
        region: str | None = None,
        job_query_batch_size: int = JOB_QUERY_BATCH_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(tencentcloud_conn_id=tencentcloud_conn_id, region=region, **kwargs)
        self.job_query_batch_size = check_int_range("job_query_batch_size", job_query_batch_size, 1, 100)
        self._client: CosS3Client | None = None
        self._client_creds: Credentials | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # ---- clients -------------------------------------------------------------------------------------------
    def get_conn(self) -> CosS3Client:
        """The hook's CosS3Client (built once; rebuilt only when temporary credentials rotate)."""
        return self._client_for(self.get_credentials())

    def _client_for(self, creds: Credentials) -> CosS3Client:
        with self._lock:  # no I/O here once credentials are known, so async callers may use it too
            if self._client is None or creds != self._client_creds:
                self._client = CosS3Client(self._cos_config(creds=creds), retry=0, session=_http_session())
                self._client_creds = creds
            return self._client

    def bucket_name(self, bucket: str) -> str:
        """``bucket`` with ``-<appid>`` appended when it lacks an APPID suffix and the connection has an appid."""
        check_non_empty_str("bucket", bucket)
        tail = bucket.rsplit("-", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return bucket
        appid = self.config.appid
        if not appid:
            raise ParameterValidationError(
                "bucket", bucket, "must be the full name <name>-<appid>, or set the connection extra 'appid'"
            )
        return f"{bucket}-{appid}"

    # ---- objects -------------------------------------------------------------------------------------------
    def head_object(self, bucket: str, key: str) -> dict[str, Any] | None:
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
            "Last-Modified": _http_date(lower.get("last-modified")),
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
            kwargs["Metadata"] = {
                (k if k.lower().startswith("x-cos-meta-") else f"x-cos-meta-{k}"): str(v) for k, v in metadata.items()
            }
        start = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None

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
            contents = [c for c in _as_list(data.get("Contents")) if isinstance(c, dict)]
            for item in contents:
                size = item.get("Size")
                yield {
                    "Key": item.get("Key"),
                    "ETag": item.get("ETag"),
                    "Size": int(size) if isinstance(size, str) and size.isdigit() else size,
                    "LastModified": _iso_date(item.get("LastModified")),
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

    def copy_object(self, src_bucket: str, src_key: str, dest_bucket: str, dest_key: str) -> dict[str, Any]:
        src_bucket = self.bucket_name(src_bucket)
        dest_bucket = self.bucket_name(dest_bucket)
        check_non_empty_str("src_key", src_key)
        check_non_empty_str("dest_key", dest_key)
        source: dict[str, str] = {"Bucket": src_bucket, "Key": src_key}
        if self.config.cos_endpoint:
            source["Endpoint"] = self.config.cos_endpoint
        else:
            source["Region"] = self._require_region()
        data = self._call(
            "CopyObject",
            lambda: self.get_conn().copy_object(Bucket=dest_bucket, Key=dest_key, CopySource=source),
        )
        lower = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
        return {
            "ETag": data.get("ETag"),
            "LastModified": data.get("LastModified"),
            "RequestId": lower.get("x-cos-request-id"),
        }

    def _require_region(self) -> str:
        region = self.config.region
        if not region:
            raise ParameterValidationError("region", None, "set region in the hook or the connection extra 'region'")
        return region

    # ---- image processing ----------------------------------------------------------------------------------
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
    ) -> dict[str, Any]:
        """PUT with a ``Pic-Operations`` header (upload mode). ``str``/path arguments name a local file."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        ops = json.dumps(pic_operations, separators=(",", ":"))
        if isinstance(body_or_path, (str, os.PathLike)):
            with open(body_or_path, "rb") as fp:
                return self._pic_put(bucket, key, fp, ops)
        return self._pic_put(bucket, key, body_or_path, ops)

    def _pic_put(self, bucket: str, key: str, body: bytes | BinaryIO, ops: str) -> dict[str, Any]:
        start = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None

        def once() -> dict[str, Any]:
            if start is not None:
                body.seek(start)  # type: ignore[union-attr]
            headers, data = self.get_conn().ci_put_object(Bucket=bucket, Body=body, Key=key, PicOperations=ops)
            return _normalise_upload_result(headers, data)

        return self._call("PicOperationsUpload", once)

    def image_process(self, bucket: str, key: str, pic_operations: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/<key>?image_process`` (cloud mode: source and results in COS)."""
        bucket = self.bucket_name(bucket)
        check_non_empty_str("key", key)
        ops = json.dumps(pic_operations, separators=(",", ":"))

        def once() -> dict[str, Any]:
            headers, data = self.get_conn().ci_image_process(Bucket=bucket, Key=key, PicOperations=ops)
            return _normalise_upload_result(headers, data)

        return self._call("ImageProcess", once)

    # ---- jobs (sync) ---------------------------------------------------------------------------------------
    def submit_job(self, bucket: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/jobs``; returns the JobsDetail. Only throttling is retried: a 5xx may have created the job."""
        bucket = self.bucket_name(bucket)
        if not isinstance(request, Mapping) or not request:
            raise ParameterValidationError("request", request, "must be a non-empty dict (the <Request> body)")
        data = self._call(
            "CreateJob",
            lambda: self.get_conn().ci_create_media_jobs(Bucket=bucket, Jobs=dict(request), Lst={}),
            idempotent=False,
        )
        jobs = _jobs_detail(data)
        if not jobs:
            raise TencentCloudError("CI accepted the job but returned no JobsDetail", operation="CreateJob")
        return jobs[0]

    def _job_ids(self, job_ids: str | Sequence[str]) -> list[str]:
        ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
        if not ids:
            raise ParameterValidationError("job_ids", job_ids, "must name at least one job id")
        for job_id in ids:
            check_non_empty_str("job_ids", job_id)
            if "," in job_id or "/" in job_id:
                raise ParameterValidationError("job_ids", job_id, "a job id cannot contain ',' or '/'")
        return list(dict.fromkeys(ids))

    def _batches(self, ids: list[str]) -> list[list[str]]:
        n = self.job_query_batch_size
        return [ids[i : i + n] for i in range(0, len(ids), n)]

    def get_jobs(self, bucket: str, job_ids: str | Sequence[str]) -> JobsQuery:
        """GET ``/jobs/<id1,id2,...>`` in batches of ``job_query_batch_size``."""
        bucket = self.bucket_name(bucket)
        result = JobsQuery()
        for batch in self._batches(self._job_ids(job_ids)):
            joined = ",".join(batch)
            try:
                data = self._call(
                    "DescribeJobs",
                    lambda j=joined: self.get_conn().ci_get_media_jobs(Bucket=bucket, JobIDs=j),  # type: ignore[misc]
                )
            except TencentCloudNotFoundError as exc:
                if exc.code not in ("NoSuchJob", "InvalidJobId"):
                    raise
                result.missing.extend(batch)
                continue
            self._merge_query(result, data)
        return result

    @staticmethod
    def _merge_query(result: JobsQuery, data: Mapping[str, Any] | None) -> None:
        data = data or {}
        if "Response" in data and isinstance(data["Response"], dict):
            data = data["Response"]
        result.jobs.extend(_jobs_detail(data))
        result.missing.extend(_missing_ids(data.get("NonExistJobIds")))

    def _list_params(
        self,
        tag: str,
        states: str | Sequence[str] | None,
        start_creation_time: Any,
        end_creation_time: Any,
        size: int,
        next_token: str,
        order_by_time: str,
    ) -> dict[str, str]:
        check_non_empty_str("tag", tag)
        size = check_int_range("size", size, 1, JOB_LIST_MAX_SIZE)
        check_choice("order_by_time", order_by_time, ("Desc", "Asc"))
        if states is None or states == "":
            states_value = "All"
        elif isinstance(states, str):
            states_value = states
        else:
            states_value = ",".join(states)
        params = {
            "tag": tag,
            "orderByTime": order_by_time,
            "states": states_value,
            "size": str(size),
            "nextToken": next_token or "",
        }
        start = _ci_time("start_creation_time", start_creation_time)
        end = _ci_time("end_creation_time", end_creation_time)
        if start:
            params["startCreationTime"] = start
        if end:
            params["endCreationTime"] = end
        return params

    def list_jobs(
        self,
        bucket: str,
        tag: str,
        states: str | Sequence[str] | None = None,
        start_creation_time: datetime | str | None = None,
        end_creation_time: datetime | str | None = None,
        size: int = 10,
        next_token: str = "",
        order_by_time: str = "Desc",
    ) -> JobsPage:
        bucket = self.bucket_name(bucket)
        p = self._list_params(tag, states, start_creation_time, end_creation_time, size, next_token, order_by_time)
        data = self._call(
            "ListJobs",
            lambda: self.get_conn().ci_list_media_jobs(
                Bucket=bucket,
                Tag=p["tag"],
                StartCreationTime=p.get("startCreationTime"),
                EndCreationTime=p.get("endCreationTime"),
                OrderByTime=p["orderByTime"],
                States=p["states"],
                Size=int(p["size"]),
                NextToken=p["nextToken"],
            ),
        )
        return self._page(data)

    @staticmethod
    def _page(data: Mapping[str, Any] | None) -> JobsPage:
        data = data or {}
        if "Response" in data and isinstance(data["Response"], dict):
            data = data["Response"]
        return JobsPage(_jobs_detail(data), str(data.get("NextToken") or ""))

    def cancel_job(self, bucket: str, job_id: str) -> None:
        bucket = self.bucket_name(bucket)
        job_id = self._job_ids(job_id)[0]
        self._call("CancelJob", lambda: self.get_conn().ci_cancel_jobs(Bucket=bucket, JobID=job_id))

    # ---- jobs (async, httpx) -------------------------------------------------------------------------------
    def _async_client(self) -> httpx.AsyncClient:
        """One httpx.AsyncClient per event loop (a client must not be shared across loops)."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None or client.is_closed:
            cfg = self.config
            mounts: dict[str, httpx.AsyncBaseTransport] = {}
            for scheme, proxy in (cfg.proxy_map() or {}).items():
                mounts[f"{scheme}://"] = httpx.AsyncHTTPTransport(proxy=proxy)
            client = httpx.AsyncClient(timeout=cfg.timeout, mounts=mounts or None, follow_redirects=False)
            self._async_clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the httpx client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.pop(loop, None)
        if client is not None:
            await client.aclose()

    async def _aci_request(
        self,
        operation: str,
        method: str,
        bucket: str,
        path: str,
        params: Mapping[str, str] | None = None,
        raw_query: str = "",
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One signed request to the CI host, retried by the policy; returns the parsed XML body."""
        await self.aget_config()
        bucket = self.bucket_name(bucket)
        params = dict(params or {})

        async def once() -> dict[str, Any]:
            creds = await self.aget_credentials()
            client = self._client_for(creds)
            headers: dict[str, str] = {}
            if creds.token:
                headers["x-ci-security-token"] = creds.token
            # Same URL and signature as the SDK would produce (the SDK signs the token header too).
            url = client.get_conf().uri(bucket=bucket, path=path, endpoint=client.get_conf()._endpoint_ci)
            auth = client.get_auth(
                Method=method, Bucket=bucket, Key=path, Params=dict(params), Headers=dict(headers), UseCiEndPoint=True
            )
            headers["Authorization"] = auth
            headers["User-Agent"] = "airflow-provider-tencent-ci"
            if raw_query:
                url += "?" + raw_query
            response = await self._async_client().request(method, url, params=params or None, headers=headers)
            body = await response.aread()
            request_id = response.headers.get("x-ci-request-id") or response.headers.get("x-cos-request-id")
            if response.status_code >= 400:
                raise self._http_error(operation, response.status_code, body, request_id)
            return parse_xml(body)

        return await self._acall(operation, once, idempotent=idempotent)

    @staticmethod
    def _http_error(operation: str, status: int, body: bytes, request_id: str | None) -> TencentCloudError:
        code = message = None
        try:
            doc = parse_xml(body)
            code, message = doc.get("Code"), doc.get("Message")
            request_id = doc.get("RequestId") or request_id
        except Exception:
            message = body[:300].decode("utf-8", "replace") if body else None
        return make_error(
            code if isinstance(code, str) else None,
            message if isinstance(message, str) and message else f"HTTP {status}",
            status=status,
            request_id=request_id,
            operation=operation,
        )

    async def aget_jobs(self, bucket: str, job_ids: str | Sequence[str]) -> JobsQuery:
        """Async :meth:`get_jobs` (httpx; never blocks the loop)."""
        await self.aget_config()
        result = JobsQuery()
        for batch in self._batches(self._job_ids(job_ids)):
            try:
                data = await self._aci_request("DescribeJobs", "GET", bucket, "/jobs/" + ",".join(batch))
            except TencentCloudNotFoundError as exc:
                if exc.code not in ("NoSuchJob", "InvalidJobId"):
                    raise
                result.missing.extend(batch)
                continue
            self._merge_query(result, data)
        return result

    async def alist_jobs(
        self,
        bucket: str,
        tag: str,
        states: str | Sequence[str] | None = None,
        start_creation_time: datetime | str | None = None,
        end_creation_time: datetime | str | None = None,
        size: int = 10,
        next_token: str = "",
        order_by_time: str = "Desc",
    ) -> JobsPage:
        params = self._list_params(tag, states, start_creation_time, end_creation_time, size, next_token, order_by_time)
        data = await self._aci_request("ListJobs", "GET", bucket, "/jobs", params=params)
        return self._page(data)

    async def acancel_job(self, bucket: str, job_id: str) -> None:
        job_id = self._job_ids(job_id)[0]
        # As the SDK does: "?cancel" is in the URL but not in the signed parameters.
        await self._aci_request("CancelJob", "PUT", bucket, "/jobs/" + job_id, raw_query="cancel")
