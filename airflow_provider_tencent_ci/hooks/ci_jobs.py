"""CI job calls (submit, query, list, cancel), sync on requests and async on httpx, from one request builder.

Every job call is described once as a :class:`CIJobRequest` (method, path, signed query, body), signed with the COS
SDK's own signer (``CosS3Client.get_auth``), and sent either through the shared requests pool (sync: operators,
sensors) or an httpx client (async: triggers, which must never block the event loop). One reply parser reads
both. The SDK's job helpers are not used: ``ci_list_media_jobs`` cannot send ``queueType`` and
``ci_create_media_jobs`` sends no Content-Type. ``tests/hooks/test_conformance.py`` compares our requests with the
helpers', so they cannot drift apart beyond those two documented differences.

Wire sources: DescribeMediaJob (cn 1545/65284), job list (intl 1045/73114, cn 460/84766: ``queueType``, exact-match
``inputObject``), CreateJob for SegmentVideoBody (cn 460/84802), cancel (cn 1246/109264), CI common request headers
(cn 460/42865: Content-Type required on a POST with a body; cos-go-sdk-v5 ``cos.go`` sends application/xml).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

import httpx
from qcloud_cos import CosS3Client
from qcloud_cos.cos_comm import format_xml

from airflow_provider_tencent_ci.common.times import ci_time_param
from airflow_provider_tencent_ci.common.xml import XmlParseError, as_list, parse_xml, unwrap_response
from airflow_provider_tencent_ci.constants import (
    AI_QUEUE_TYPE,
    JOB_LIST_MAX_SIZE,
    JOB_QUERY_BATCH_DEFAULT,
    QUEUE_TYPES,
)
from airflow_provider_tencent_ci.exceptions import (
    ParameterValidationError,
    TencentCloudError,
    TencentCloudNotFoundError,
)
from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
from airflow_provider_tencent_ci.hooks.cos_base import CosClientHook
from airflow_provider_tencent_ci.hooks.retry import make_error
from airflow_provider_tencent_ci.hooks.sessions import http_session
from airflow_provider_tencent_ci.jobs.ids import JOB_ID_RULE, is_job_id
from airflow_provider_tencent_ci.validation import check_choice, check_int_range, check_non_empty_str

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack is Python >= 3.11

XML_CONTENT_TYPE = "application/xml"
USER_AGENT = "airflow-provider-tencent-ci"
# DescribeJobs answers these codes when none of the ids exist (the emulator: NoSuchJob; CI: InvalidJobId).
_MISSING_JOB_CODES = ("NoSuchJob", "InvalidJobId")


@dataclass
class JobsQuery:
    """Answer of a job query: the JobsDetail found and the ids CI reported as non-existent."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class JobsPage:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    next_token: str = ""


@dataclass(frozen=True)
class CIJobRequest:
    """One job call on the CI host, as sent by both the sync and the async path."""

    operation: str
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)  # signed query parameters
    flag: str = ""  # a bare, unsigned query flag ("cancel"), as cos-python-sdk-v5 sends it
    body: bytes = b""
    content_type: str | None = None
    idempotent: bool = True  # False: only throttling is retried (a 5xx may have created the job)

    def query_string(self) -> str:
        pairs = [f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in self.params.items()]
        return "&".join([*pairs, *([self.flag] if self.flag else [])])

    def signed(self, client: CosS3Client, bucket: str, token: str | None) -> tuple[str, dict[str, str]]:
        """(URL, headers) of this request, signed with the SDK's signer for ``client``'s credentials.

        Signed headers: host, the STS token header (x-ci-security-token, as the SDK sends it on CI calls), and
        Content-Length/Content-Type when the method carries a body (what the SDK's requests-based signer sees).
        """
        conf = client.get_conf()
        headers: dict[str, str] = {}
        if self.method in ("POST", "PUT"):
            headers["Content-Length"] = str(len(self.body))
        if self.content_type:
            headers["Content-Type"] = self.content_type
        if token:
            headers["x-ci-security-token"] = token
        headers["Authorization"] = client.get_auth(
            Method=self.method,
            Bucket=bucket,
            Key=self.path,
            Params=dict(self.params),
            Headers=dict(headers),
            UseCiEndPoint=True,
        )
        headers["User-Agent"] = USER_AGENT
        url = conf.uri(bucket=bucket, path=self.path, endpoint=conf._endpoint_ci)
        query = self.query_string()
        return (f"{url}?{query}" if query else url), headers


def create_job_request(request: Mapping[str, Any]) -> CIJobRequest:
    """POST /jobs with ``<Request>`` built by the SDK's own XML writer."""
    if not isinstance(request, Mapping) or not request:
        raise ParameterValidationError("request", request, "must be a non-empty dict (the <Request> body)")
    body = format_xml(data=dict(request), root="Request")
    return CIJobRequest(
        "CreateJob",
        "POST",
        "/jobs",
        body=body.encode("utf-8") if isinstance(body, str) else body,
        content_type=XML_CONTENT_TYPE,
        idempotent=False,
    )


def describe_jobs_request(job_ids: Sequence[str]) -> CIJobRequest:
    return CIJobRequest("DescribeJobs", "GET", "/jobs/" + ",".join(job_ids))


def cancel_job_request(job_id: str) -> CIJobRequest:
    # As the SDK does: "?cancel" is in the URL but not among the signed parameters.
    return CIJobRequest("CancelJob", "PUT", "/jobs/" + job_id, flag="cancel")


class JobListFilters(TypedDict, total=False):
    """The job list's filters, as :func:`list_jobs_request` (and ``list_jobs``/``alist_jobs``) take them."""

    states: str | Sequence[str] | None
    start_creation_time: datetime | str | None
    end_creation_time: datetime | str | None
    size: int
    next_token: str
    order_by_time: str
    queue_id: str | None
    queue_type: str
    input_object: str | None


def list_jobs_request(
    tag: str,
    *,
    states: str | Sequence[str] | None = None,
    start_creation_time: datetime | str | None = None,
    end_creation_time: datetime | str | None = None,
    size: int = 10,
    next_token: str = "",
    order_by_time: str = "Desc",
    queue_id: str | None = None,
    queue_type: str = AI_QUEUE_TYPE,
    input_object: str | None = None,
) -> CIJobRequest:
    """GET /jobs with the documented filters; ``queueType`` is always sent (no documented default).

    :param states: ``All`` (None) or the states to list; ``size`` 1..100; ``order_by_time`` Desc or Asc.
    :param queue_id: only jobs of this queue.
    :param queue_type: the queues' type (AIProcess, the SegmentVideoBody queue, by default).
    :param input_object: only jobs whose input is exactly this object key (documented exact match).
    """
    check_non_empty_str("tag", tag)
    size = check_int_range("size", size, 1, JOB_LIST_MAX_SIZE)
    check_choice("order_by_time", order_by_time, ("Desc", "Asc"))
    check_choice("queue_type", queue_type, QUEUE_TYPES)
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
    if queue_id is not None:
        params["queueId"] = check_non_empty_str("queue_id", queue_id)
    params["queueType"] = queue_type
    start = ci_time_param("start_creation_time", start_creation_time)
    end = ci_time_param("end_creation_time", end_creation_time)
    if start:
        params["startCreationTime"] = start
    if end:
        params["endCreationTime"] = end
    if input_object is not None:
        params["inputObject"] = check_non_empty_str("input_object", input_object)
    return CIJobRequest("ListJobs", "GET", "/jobs", params=params)


def reply_error(operation: str, status: int, body: bytes, request_id: str | None) -> TencentCloudError:
    """The error of an HTTP >= 400 answer: CI's ``<Error>`` Code/Message/RequestId when readable, else the status."""
    code = message = None
    try:
        doc = parse_xml(body)
        code, message = doc.get("Code"), doc.get("Message")
        request_id = doc.get("RequestId") or request_id
    except XmlParseError:
        message = body[:300].decode("utf-8", "replace") if body else None
    return make_error(
        code if isinstance(code, str) and code else None,
        message if isinstance(message, str) and message else f"HTTP {status}",
        status=status,
        request_id=request_id,
        operation=operation,
    )


def read_reply(operation: str, status: int, body: bytes, headers: Mapping[str, str]) -> Mapping[str, Any]:
    """The parsed answer of a job call (the inside of ``<Response>``), or the mapped error raised."""
    lower = {k.lower(): v for k, v in headers.items()}
    request_id = lower.get("x-ci-request-id") or lower.get("x-cos-request-id")
    if status >= 400:
        raise reply_error(operation, status, body, request_id)
    try:
        return unwrap_response(parse_xml(body))
    except XmlParseError as err:
        raise TencentCloudError(
            f"CI answered HTTP {status} with an unreadable body: {err}", operation=operation, request_id=request_id
        ) from None


def jobs_detail(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [j for j in as_list(unwrap_response(doc).get("JobsDetail")) if isinstance(j, dict)]


def missing_ids(value: Any) -> list[str]:
    """``NonExistJobIds``: one comma-separated string (cn 1545/65284), or repeated elements."""
    out: list[str] = []
    for item in as_list(value):
        if isinstance(item, str):
            out.extend(x.strip() for x in item.split(",") if x.strip())
    return out


def validate_job_ids(job_ids: str | Sequence[str]) -> list[str]:
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
    if not ids:
        raise ParameterValidationError("job_ids", job_ids, "must name at least one job id")
    for job_id in ids:
        if not is_job_id(job_id):
            raise ParameterValidationError("job_ids", job_id, JOB_ID_RULE)
    return list(dict.fromkeys(ids))


class CIJobsHook(CosClientHook):
    """CI jobs, sync and async.

    :param job_query_batch_size: how many ids one DescribeJobs request names (the maximum is not documented).
    """

    def __init__(
        self,
        tencentcloud_conn_id: str = TencentCloudBaseHook.default_conn_name,
        region: str | None = None,
        job_query_batch_size: int = JOB_QUERY_BATCH_DEFAULT,
        **kwargs: Any,
    ) -> None:
        super().__init__(tencentcloud_conn_id=tencentcloud_conn_id, region=region, **kwargs)
        self.job_query_batch_size = check_int_range("job_query_batch_size", job_query_batch_size, 1, 100)
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    # ---- transport -----------------------------------------------------------------------------------------
    def _send(self, bucket: str, request: CIJobRequest) -> Mapping[str, Any]:
        """Send ``request`` through the shared requests pool, retried by the policy."""
        bucket = self.bucket_name(bucket)
        cfg = self.config

        def once() -> Mapping[str, Any]:
            creds = self.get_credentials()
            url, headers = request.signed(self._client_for(creds), bucket, creds.token)
            response = http_session().request(
                request.method,
                url,
                data=request.body if request.method in ("POST", "PUT") else None,
                headers=headers,
                proxies=cfg.proxy_map(),
                timeout=cfg.timeout,
                allow_redirects=False,
            )
            with response:
                return read_reply(request.operation, response.status_code, response.content, response.headers)

        return self._call(request.operation, once, idempotent=request.idempotent)

    async def _asend(self, bucket: str, request: CIJobRequest) -> Mapping[str, Any]:
        """Async :meth:`_send` on httpx."""
        await self.aget_config()
        bucket = self.bucket_name(bucket)

        async def once() -> Mapping[str, Any]:
            creds = await self.aget_credentials()
            url, headers = request.signed(self._client_for(creds), bucket, creds.token)
            response = await self._async_client().request(
                request.method,
                url,
                content=request.body if request.method in ("POST", "PUT") else None,
                headers=headers,
            )
            body = await response.aread()
            return read_reply(request.operation, response.status_code, body, response.headers)

        return await self._acall(request.operation, once, idempotent=request.idempotent)

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

    # ---- replies -------------------------------------------------------------------------------------------
    def _batches(self, ids: list[str]) -> list[list[str]]:
        n = self.job_query_batch_size
        return [ids[i : i + n] for i in range(0, len(ids), n)]

    @staticmethod
    def _merge_query(result: JobsQuery, data: Mapping[str, Any] | None) -> None:
        data = unwrap_response(data)
        result.jobs.extend(jobs_detail(data))
        result.missing.extend(missing_ids(data.get("NonExistJobIds")))

    @staticmethod
    def _merge_missing(result: JobsQuery, batch: list[str], error: TencentCloudNotFoundError) -> None:
        """DescribeJobs answers a not-found code when none of the batch's ids exist: all of them are missing."""
        if error.code not in _MISSING_JOB_CODES:
            raise error
        result.missing.extend(batch)

    @staticmethod
    def _page(data: Mapping[str, Any] | None) -> JobsPage:
        data = unwrap_response(data)
        return JobsPage(jobs_detail(data), str(data.get("NextToken") or ""))

    @staticmethod
    def _submitted(data: Mapping[str, Any]) -> dict[str, Any]:
        jobs = jobs_detail(data)
        if not jobs:
            raise TencentCloudError("CI accepted the job but returned no JobsDetail", operation="CreateJob")
        return jobs[0]

    # ---- sync ----------------------------------------------------------------------------------------------
    def submit_job(self, bucket: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``/jobs``; returns the JobsDetail. Only throttling is retried: a 5xx may have created the job."""
        bucket = self.bucket_name(bucket)
        return self._submitted(self._send(bucket, create_job_request(request)))

    def get_jobs(self, bucket: str, job_ids: str | Sequence[str]) -> JobsQuery:
        """GET ``/jobs/<id1,id2,...>`` in batches of ``job_query_batch_size``."""
        bucket = self.bucket_name(bucket)
        result = JobsQuery()
        for batch in self._batches(validate_job_ids(job_ids)):
            try:
                self._merge_query(result, self._send(bucket, describe_jobs_request(batch)))
            except TencentCloudNotFoundError as exc:
                self._merge_missing(result, batch, exc)
        return result

    def list_jobs(self, bucket: str, tag: str, **filters: Unpack[JobListFilters]) -> JobsPage:
        """GET ``/jobs``: one page of jobs of ``tag``; ``filters`` as :func:`list_jobs_request` takes them."""
        return self._page(self._send(bucket, list_jobs_request(tag, **filters)))

    def cancel_job(self, bucket: str, job_id: str) -> None:
        """PUT ``/jobs/<id>?cancel`` (only jobs that have not started can be cancelled)."""
        bucket = self.bucket_name(bucket)
        self._send(bucket, cancel_job_request(validate_job_ids(job_id)[0]))

    # ---- async ---------------------------------------------------------------------------------------------
    async def aget_jobs(self, bucket: str, job_ids: str | Sequence[str]) -> JobsQuery:
        """Async :meth:`get_jobs` (httpx; never blocks the loop)."""
        await self.aget_config()
        result = JobsQuery()
        for batch in self._batches(validate_job_ids(job_ids)):
            try:
                self._merge_query(result, await self._asend(bucket, describe_jobs_request(batch)))
            except TencentCloudNotFoundError as exc:
                self._merge_missing(result, batch, exc)
        return result

    async def alist_jobs(self, bucket: str, tag: str, **filters: Unpack[JobListFilters]) -> JobsPage:
        """Async :meth:`list_jobs`."""
        return self._page(await self._asend(bucket, list_jobs_request(tag, **filters)))

    async def acancel_job(self, bucket: str, job_id: str) -> None:
        """Async :meth:`cancel_job`."""
        await self._asend(bucket, cancel_job_request(validate_job_ids(job_id)[0]))

    async def asubmit_job(self, bucket: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Async :meth:`submit_job`."""
        return self._submitted(await self._asend(bucket, create_job_request(request)))
