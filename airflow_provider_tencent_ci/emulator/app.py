"""The emulator's ASGI application: host routing, signature checks, faults, accounting, dispatch.

Clients reach the emulator through an HTTP proxy setting, so requests arrive in absolute form
(``GET http://bucket-1250000000.cos.ap-guangzhou.myqcloud.com/key HTTP/1.1``). uvicorn's h11 protocol then puts the
absolute URL in ``path``/``raw_path`` while httptools puts only the path: both are normalised here from
``raw_path``, and the host comes from the Host header (falling back to the URL's authority).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, unquote_plus

from . import auth, bda, ci_image, cos, jobs, sts
from .control import ControlAPI
from .core import BUCKET_HOST_RE, CosError, EmulatorState, EmuRequest, EmuResponse, TcApiError
from .wire import BodyTooLarge, RequestBody
from .xmlutil import http_date, to_xml

log = logging.getLogger(__name__)

Handler = Callable[[EmulatorState, EmuRequest], Awaitable[EmuResponse]]
Scope = dict[str, Any]

_SERVICE_HOST = "service.cos.myqcloud.com"
_BDA_HOST = re.compile(r"^bda(\.[a-z0-9-]+)?\.tencentcloudapi\.com$")  # global or regional endpoint
_STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.tencentcloudapi\.com$")
BDA_SERVICE = "bda"
COS_SERVICES = frozenset({"cos", "ci", "service"})  # q-signed XML services; every other service is API 3.0
BDA_ACTIONS = {"SegmentCustomizedPortraitPic"}
BDA_REGIONS = {"ap-beijing", "ap-guangzhou", "ap-shanghai"}  # regions the BDA API documents
# API 3.0 request size limit for TC3-HMAC-SHA256 POST requests (10 MB: API 3.0 "Request Structure" page).
API3_MAX_BODY_BYTES = 10 * 1024 * 1024
# COS accepts PUT Object bodies up to 5 GB; the emulator keeps objects in memory, so its default cap is lower
# (``Emulator(max_object_bytes=...)``, CLI ``--max-object-mb``). Above it: 400 EntityTooLarge, nothing read.
MAX_OBJECT_BYTES = 512 * 1024 * 1024
# Operations that create an object under the request's key (its length is checked before the body is read).
KEY_WRITING_OPERATIONS = frozenset({"PutObject", "CopyObject", "PicOperationsUpload"})
# Rate-limit families (pacing.FAMILIES): synchronous image processing, plain object calls, the job API, API 3.0.
IMAGE_OPERATIONS = frozenset({"CIProcess", "PicOperationsUpload", "ImageProcess"})


def split_target(raw_path: bytes) -> tuple[str | None, bytes]:
    """(authority or None, origin-form path) from a request target that may be absolute-form."""
    lower = raw_path[:8].lower()
    if lower.startswith(b"http://") or lower.startswith(b"https://"):
        rest = raw_path.split(b"://", 1)[1]
        authority, slash, path = rest.partition(b"/")
        return authority.decode("latin-1"), b"/" + path if slash else b"/"
    return None, raw_path or b"/"


def parse_query(qs: str) -> dict[str, str]:
    """Decoded query; ``a`` alone maps to "" (flag params like ``image_process``, ``cancel``)."""
    out: dict[str, str] = {}
    for part in qs.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        out[unquote_plus(k)] = unquote_plus(v)
    return out


def family_of(service: str, operation: str) -> str:
    """The rate-limit family of an operation: ``image``, ``objects``, ``jobs``, or the API 3.0 service name."""
    if operation in IMAGE_OPERATIONS:
        return "image"
    return {"cos": "objects", "service": "objects", "ci": "jobs"}.get(service, service)


def classify(service: str, method: str, key: str, query: dict[str, str], headers: dict[str, str]) -> str:
    """The operation name used for accounting, faults and dispatch."""
    if service == "service":
        return "ListBuckets" if method == "GET" and key == "" else "Unknown"
    if service not in COS_SERVICES:  # API 3.0 names the action in a header
        return headers.get("x-tc-action", "Unknown")
    if service == "ci":
        parts = key.split("/")
        if parts[0] == "jobs":
            if method == "POST" and len(parts) == 1:
                return "CreateJob"
            if method == "GET" and (len(parts) == 1 or parts[1] == ""):
                return "ListJobs"
            if method == "GET" and len(parts) == 2:
                return "DescribeJobs"
            if method == "PUT" and len(parts) == 2 and "cancel" in query:
                return "CancelJob"
        return "Unknown"
    # cos
    if method == "GET" and "ci-process" in query:
        return "CIProcess"
    if method == "PUT" and "pic-operations" in headers:
        return "PicOperationsUpload"
    if method == "POST" and "image_process" in query:
        return "ImageProcess"
    if key == "":
        return {"GET": "ListObjects", "HEAD": "HeadBucket"}.get(method, "Unknown")
    if method == "PUT":
        return "CopyObject" if "x-cos-copy-source" in headers else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "Unknown")


# Each operation's handler (STS is dispatched apart: it is answered before any bucket or service check).
HANDLERS: dict[str, Handler] = {
    "ListBuckets": cos.list_buckets,
    "ListObjects": cos.list_objects,
    "HeadBucket": cos.head_bucket,
    "PutObject": cos.put_object,
    "CopyObject": cos.copy_object,
    "GetObject": cos.get_object,
    "HeadObject": cos.head_object,
    "DeleteObject": cos.delete_object,
    "CIProcess": ci_image.handle_ci_process,
    "PicOperationsUpload": ci_image.handle_pic_upload,
    "ImageProcess": ci_image.handle_image_process,
    "CreateJob": jobs.handle_create,
    "DescribeJobs": jobs.handle_describe,
    "ListJobs": jobs.handle_list,
    "CancelJob": jobs.handle_cancel,
    "SegmentCustomizedPortraitPic": bda.handle_segment,
}


class EmulatorApp:
    """ASGI 3 application over one :class:`EmulatorState`; ``control`` serves ``/_emulator/`` (None: not served)."""

    def __init__(
        self, state: EmulatorState, control: ControlAPI | None = None, max_object_bytes: int = MAX_OBJECT_BYTES
    ) -> None:
        self.state = state
        self.control = control
        self.max_object_bytes = max_object_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self._http(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.state.jobs.start()
                except Exception as exc:  # surfaced to Emulator.start() through uvicorn
                    log.exception("job engine failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                try:
                    await self.state.jobs.stop()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    # -- HTTP ------------------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        state = self.state
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        authority, origin_path = split_target(raw_path)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            n = name.decode("latin-1").lower()
            v = value.decode("utf-8", "surrogateescape")
            headers[n] = f"{headers[n]},{v}" if n in headers else v
        host_hdr = headers.get("host") or authority or ""
        host = host_hdr.rsplit(":", 1)[0].lower() if not host_hdr.startswith("[") else host_hdr.lower()
        path = unquote(origin_path.decode("latin-1"), encoding="utf-8", errors="surrogateescape")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = parse_query(raw_query)
        method = scope["method"].upper()
        port = (scope.get("server") or (None, None))[1]
        if self.control is not None and self.control.serves(path, host_hdr, port):
            await self.control.handle(method, path, query, headers, port, receive, send)
            return
        request_id = state.new_request_id()
        body = RequestBody(receive, headers)

        m = BUCKET_HOST_RE.match(host)
        bucket: str | None = None
        region: str | None = None
        if m:
            service, bucket, region = m.group("svc"), m.group("bucket"), m.group("region")
        elif host == _SERVICE_HOST:
            service = "service"
        elif _STS_HOST.match(host):  # before the x-tc-action test, which would call it BDA
            service = "sts"
        elif host in state.bda_hosts or _BDA_HOST.match(host) or "x-tc-action" in headers:
            service = "bda"
        else:
            service = "cos"
        req = EmuRequest(
            method=method,
            host=host,
            service=service,
            bucket=bucket,
            region=region,
            path=path,
            key=path[1:],
            query=query,
            headers=headers,
            body=b"",  # read in _process once the request is authenticated
            secret_id=None,
            request_id=request_id,
        )
        operation = classify(service, method, req.key, query, headers)
        state.stats.log_query(operation, bucket, query)
        try:
            resp = await self._process(req, operation, raw_query, body)
        except _Reset:
            state.stats.record(operation, bucket, False, "ConnectionReset")
            _abort(receive)
            return
        except CosError as err:
            state.stats.record(operation, bucket, False, err.code)
            resp = self._cos_error(req, err)
        except TcApiError as err:
            state.stats.record(operation, bucket, False, err.code)
            resp = _tc_error(req, err)
        except Exception:
            log.exception("emulator handler %s failed", operation)
            if service not in COS_SERVICES:
                err2: Exception = TcApiError("InternalError", "An internal error occurred.")
                state.stats.record(operation, bucket, False, "InternalError")
                resp = _tc_error(req, err2)  # type: ignore[arg-type]
            else:
                err3 = CosError(500, "InternalError", "We encountered an internal error. Please try again.")
                state.stats.record(operation, bucket, False, "InternalError")
                resp = self._cos_error(req, err3)
        else:
            state.stats.record(operation, bucket, resp.status < 400)
        if await body.finish():
            resp.headers["Connection"] = "close"
        await self._send(req, resp, send)

    async def _process(self, req: EmuRequest, operation: str, raw_query: str, body: RequestBody) -> EmuResponse:
        """Authenticate (before any body is read), read the body within its cap, apply faults, dispatch."""
        state = self.state
        api3 = req.service not in COS_SERVICES  # API 3.0 (TC3-signed JSON): BDA, and any service routed like it
        if api3:
            auth.require_tc3_credential(state.credentials, req.headers)  # the full check needs the body
        else:
            self._authenticate_cos(req, operation)
        try:
            req.body = await body.read(API3_MAX_BODY_BYTES if api3 else self.max_object_bytes)
        except BodyTooLarge as exc:
            if api3:
                message = f"The request package exceeds the size limit ({exc})."
                raise TcApiError("RequestSizeLimitExceeded", message) from None
            raise CosError(
                400, "EntityTooLarge", f"Your proposed upload exceeds the maximum allowed object size ({exc})."
            ) from None
        decision = state.faults.decide(operation, family_of(req.service, operation), req.bucket)
        if decision.latency > 0:
            await asyncio.sleep(decision.latency)
        if decision.kind is not None:
            _raise_fault(decision.kind, api3)

        if api3:
            cred = auth.verify_tc3(
                state.credentials,
                method=req.method,
                path=req.path,
                raw_query=raw_query,
                headers=req.headers,
                body=req.body,
                service=req.service,  # the TC3 credential scope names the service ("bda")
            )
            req.secret_id = cred.secret_id
        if req.service == sts.STS_SERVICE:
            return sts.handle(req, operation)
        if req.service == BDA_SERVICE:
            if operation not in BDA_ACTIONS:
                raise TcApiError("InvalidAction", f"The requested action {operation!r} does not exist.")
            region = req.headers.get("x-tc-region", "")
            req.region = region or None
            if region and region not in BDA_REGIONS:
                raise TcApiError("UnsupportedRegion", f"The action does not support the region {region!r}.")
        return await HANDLERS[operation](state, req)

    def _authenticate_cos(self, req: EmuRequest, operation: str) -> None:
        """Bucket, signature, operation and key checks of a COS/CI request: everything that needs no body."""
        state = self.state
        if req.service in ("cos", "ci"):
            if req.bucket is None:
                raise CosError(400, "InvalidURI", f"Host {req.host!r} is not a COS or CI bucket endpoint.")
            if not state.store.has_bucket(req.bucket):
                raise CosError(404, "NoSuchBucket", "The specified bucket does not exist.")
        cred = auth.verify_cos(
            state.credentials,
            method=req.method,
            path=req.path,
            query=req.query,
            headers=req.headers,
            token_header="x-ci-security-token" if req.service == "ci" else "x-cos-security-token",
            max_skew=state.max_skew_seconds,
        )
        req.secret_id = cred.secret_id
        if operation == "Unknown":
            raise CosError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if operation in KEY_WRITING_OPERATIONS:
            cos.check_key_length(req.key)

    # -- replies ---------------------------------------------------------------------------------------------
    def _cos_error(self, req: EmuRequest, err: CosError) -> EmuResponse:
        body = to_xml(
            "Error",
            {
                "Code": err.code,
                "Message": err.message,
                "Resource": f"{req.host}{req.path}",
                "RequestId": req.request_id,
                "TraceId": req.request_id,
            },
        )
        return EmuResponse(err.status, body, {}, content_type="application/xml")

    async def _send(self, req: EmuRequest, resp: EmuResponse, send: Any) -> None:
        hdrs: dict[str, str] = {}
        if resp.content_type:
            hdrs["Content-Type"] = resp.content_type
        hdrs.update(resp.headers)
        if req.service not in COS_SERVICES:
            hdrs.setdefault("X-TC-RequestId", req.request_id)
        else:
            hdrs["Server"] = "tencent-ci" if req.service == "ci" else "tencent-cos"
            hdrs["x-ci-request-id" if req.service == "ci" else "x-cos-request-id"] = req.request_id
        hdrs["Date"] = http_date(self.state.now())
        body = resp.body
        if req.method == "HEAD":
            hdrs.setdefault("Content-Length", str(len(body)))
            body = b""
        elif resp.status in (204, 304):
            body = b""
            hdrs.pop("Content-Length", None)
        else:
            hdrs["Content-Length"] = str(len(body))
        # Header names keep their case (the SDK turns headers into a plain dict: callers read resp["ETag"]);
        # a later name overrides an earlier one that differs only in case.
        unique: dict[str, tuple[str, str]] = {}
        for k, v in hdrs.items():
            unique[k.lower()] = (k, str(v))
        raw = [(k.encode("latin-1"), v.encode("utf-8")) for k, v in unique.values()]
        await send({"type": "http.response.start", "status": resp.status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


def _tc_error(req: EmuRequest, err: TcApiError) -> EmuResponse:
    body = json.dumps(
        {"Response": {"Error": {"Code": err.code, "Message": err.message}, "RequestId": req.request_id}}
    ).encode("utf-8")
    return EmuResponse(200, body, {}, content_type="application/json")


class _Reset(Exception):
    pass


def _raise_fault(kind: str, api3: bool) -> None:
    if kind == "reset":
        raise _Reset()
    if api3:
        if kind == "throttle":
            raise TcApiError("RequestLimitExceeded", "Your request frequency has reached the limit.")
        raise TcApiError("InternalError", "An internal error occurred. (emulated fault)")
    if kind == "throttle":
        raise CosError(503, "SlowDown", "Please reduce your request rate. (emulated fault)")
    raise CosError(500, "InternalError", "We encountered an internal error. Please try again. (emulated fault)")


def _abort(receive: Any) -> None:
    """Close the client connection without any answer. uvicorn's receive callable is a bound method of the
    request cycle, which holds the transport; marking the cycle disconnected stops uvicorn sending its 500."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("emulated connection reset")  # no transport: uvicorn answers 500, close enough
    transport.abort()
    with contextlib.suppress(AttributeError):
        cycle.disconnected = True  # type: ignore[union-attr]
