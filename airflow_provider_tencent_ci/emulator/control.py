"""The control API under ``/_emulator/``: inspection, reset, seeding, job control, and a read-only object view.

Who may use it (issue 14 item 6): it answers only on the emulator's own host names (``127.0.0.1``, ``localhost``,
``[::1]``, the bind address; the port, when given, must be the emulator's own), so on a bucket host
``/_emulator/...`` is an ordinary object key. Every request carries the control token, checked before any body is
read: ``Authorization: Bearer <token>`` or ``X-Emulator-Token: <token>``, or, for browser GETs of the object view
only, in the path (``/_emulator/view/<token>/...``, the emulator's ``console_base_url``). A request with a foreign
``Origin`` is refused, and so is a POST with a content type a browser may send cross-origin without a preflight
(text/plain, form encodings): the control API takes JSON or nothing.

Endpoints (token in a header):

- ``GET health | stats | jobs | jobs/<job_id>``; ``POST reset``;
- ``POST jobs/<job_id>/pause | resume | fail`` (``fail`` takes optional JSON ``{"code", "message"}``);
  ``POST timing`` with JSON ``{"queue_seconds", "run_seconds"}`` (through the Emulator facade's job methods);
- ``GET objects`` (buckets), ``GET objects/<bucket>/?prefix=`` (listing), ``GET objects/<bucket>/<key>``
  (download), ``PUT objects/<bucket>/<key>`` (seed an object; the body is the content, Content-Type kept).

The view (token in the path, GET only): ``view/<token>/`` (buckets), ``view/<token>/objects/<bucket>/`` (HTML
listing), ``view/<token>/objects/<bucket>/<key>`` (download with the object's content type, sandboxed),
``view/<token>/jobs/`` and ``view/<token>/jobs/<bucket>/<job_id>`` (job pages with links to their objects).
"""

from __future__ import annotations

import hmac
import html
import inspect
import json
import time
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import quote

from .core import EmulatorState
from .cos import MAX_KEY_BYTES
from .wire import BodyTooLarge, check_declared, drain_small_body, read_body, send_plain

CONTROL_PREFIX = "/_emulator/"
VIEW = "view"
TOKEN_HEADER = "x-emulator-token"
MAX_CONTROL_JSON_BYTES = 64 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
# Content types a browser sends cross-origin without a CORS preflight (Fetch standard, "CORS-safelisted").
_SIMPLE_CONTENT_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
# Downloads never run as pages on the emulator's origin (an uploaded HTML object could otherwise read the view).
# No Referer either: the view's URLs hold the token.
_DOWNLOAD_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class JobControl(Protocol):
    """The Emulator facade's job methods (the job engine's public control surface)."""

    def pause_job(self, job_id: str) -> None: ...

    def resume_job(self, job_id: str) -> None: ...

    def force_job_outcome(
        self, job_id: str, state: str, code: str | None = None, message: str | None = None
    ) -> None: ...

    def set_job_timing(self, queue_seconds: float, run_seconds: float) -> None: ...


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def split_host(host_header: str) -> tuple[str, int | None]:
    """("name", port or None) from a Host header value; IPv6 literals keep their brackets."""
    value = host_header.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = value.partition(":")
    return name, (int(port) if port.isdigit() else None)


class ControlAPI:
    def __init__(
        self,
        state: EmulatorState,
        token: str,
        jobs: JobControl | None = None,
        own_hosts: Iterable[str] = (),
        max_upload_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        if not token:
            raise ValueError("the control token must not be empty")
        self.state = state
        self.token = token
        self.jobs = jobs
        self.own_hosts = {h.lower() for h in (*LOOPBACK_NAMES, *own_hosts)}
        self.max_upload_bytes = max_upload_bytes

    # -- who ---------------------------------------------------------------------------------------------------
    def serves(self, path: str, host_header: str, port: int | None) -> bool:
        """True when this request is for the control API (its prefix, on one of the emulator's own hosts)."""
        if not path.startswith(CONTROL_PREFIX):
            return False
        name, given_port = split_host(host_header)
        return name in self.own_hosts and (given_port is None or port is None or given_port == port)

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self.token.encode("utf-8"))

    def _authorize(self, method: str, parts: list[str], headers: dict[str, str], port: int | None) -> list[str]:
        """The route after authentication (the view's token segment removed); ControlError when refused."""
        origin = headers.get("origin")
        if origin is not None and not self._own_origin(origin, port):
            raise ControlError(403, f"cross-origin requests are refused (Origin {origin!r})")
        if method == "POST":
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype in _SIMPLE_CONTENT_TYPES:
                raise ControlError(415, f"Content-Type {ctype!r} is refused: send JSON (application/json) or no body")
        if parts and parts[0] == VIEW:
            if method != "GET" or len(parts) < 2 or not self._token_ok(parts[1]):
                raise ControlError(401, "the object view needs the control token in its URL")
            return [VIEW, *parts[2:]]
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not (self._token_ok(bearer) or self._token_ok(headers.get(TOKEN_HEADER))):
            raise ControlError(
                401, "the control API needs the emulator's token: 'Authorization: Bearer <token>' or X-Emulator-Token"
            )
        return parts

    def _own_origin(self, origin: str, port: int | None) -> bool:
        scheme, _, rest = origin.partition("://")
        if scheme != "http":
            return False
        name, given_port = split_host(rest)
        return name in self.own_hosts and given_port == port

    # -- dispatch ----------------------------------------------------------------------------------------------
    async def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        port: int | None,
        receive: Any,
        send: Any,
    ) -> None:
        parts = path[len(CONTROL_PREFIX) :].split("/")
        try:
            route = self._authorize(method, parts, headers, port)
        except ControlError as err:
            unread = await drain_small_body(receive, headers)
            await _json(send, err.status, {"error": err.message}, {"Connection": "close"} if unread else None)
            return
        try:
            if route[0] == VIEW:
                await self._view(route[1:], query, send)
            else:
                await self._api(method, route, query, headers, receive, send)
        except BodyTooLarge as exc:
            await _json(send, 413, {"error": str(exc)}, {"Connection": "close"})
        except ControlError as err:
            await _json(send, err.status, {"error": err.message})

    async def _api(
        self, method: str, route: list[str], query: dict[str, str], headers: dict[str, str], receive: Any, send: Any
    ) -> None:
        name = route[0]
        if name == "objects" and len(route) >= 3 and route[2:] != [""] and method in ("GET", "PUT"):
            bucket, key = self._bucket(route[1]), "/".join(route[2:])
            if method == "GET":
                await self._download(bucket, key, send)
                return
            if len(key.encode("utf-8", "surrogateescape")) > MAX_KEY_BYTES:
                raise ControlError(400, f"the key is longer than {MAX_KEY_BYTES} bytes in UTF-8 (COS's limit)")
            check_declared(headers, self.max_upload_bytes)
            data = await read_body(receive, self.max_upload_bytes)
            rec = self.state.store.put(bucket, key, data, headers.get("content-type"))
            await _json(send, 200, {"bucket": bucket, "key": key, "size": rec.size, "etag": rec.etag})
            return
        body: Any = None
        if method == "POST":
            check_declared(headers, MAX_CONTROL_JSON_BYTES)
            raw = await read_body(receive, MAX_CONTROL_JSON_BYTES)
            body = _parse_json(raw)
        elif method != "GET":
            raise ControlError(405, f"{method} is not allowed on the control API here")
        await _json(send, 200, await self._api_call(method, route, query, body))

    async def _api_call(self, method: str, route: list[str], query: dict[str, str], body: Any) -> Any:
        name, rest = route[0], route[1:]
        if method == "GET" and name == "health" and not rest:
            return {"ok": True, "time": time.time()}
        if method == "GET" and name == "stats" and not rest:
            return self.state.stats.snapshot()
        if method == "POST" and name == "reset" and not rest:
            self.state.reset()
            return {"reset": True}
        if method == "GET" and name == "jobs" and (not rest or rest == [""]):
            return {"jobs": json.loads(json.dumps(self.state.jobs.list_jobs(), default=str))}
        if method == "GET" and name == "jobs" and len(rest) == 1:
            return json.loads(json.dumps(self._job(rest[0]), default=str))
        if method == "POST" and name == "jobs" and len(rest) == 2:
            return await self._job_action(rest[0], rest[1], body or {})
        if method == "POST" and name == "timing" and not rest:
            args = body or {}
            try:
                queue_seconds, run_seconds = float(args["queue_seconds"]), float(args["run_seconds"])
            except (KeyError, TypeError, ValueError):
                usage = 'timing needs JSON {"queue_seconds": <number>, "run_seconds": <number>}'
                raise ControlError(400, usage) from None
            await self._call_jobs("set_job_timing", queue_seconds, run_seconds)
            return {"queue_seconds": queue_seconds, "run_seconds": run_seconds}
        if method == "GET" and name == "objects" and not rest:
            return {"buckets": self.state.store.buckets()}
        if method == "GET" and name == "objects" and (len(rest) == 1 or rest[1:] == [""]):
            bucket = self._bucket(rest[0])
            return {"bucket": bucket, "objects": [_object_entry(r) for r in self._records(bucket, query)]}
        raise ControlError(404, f"unknown control endpoint {method} {CONTROL_PREFIX}{'/'.join(route)}")

    async def _job_action(self, job_id: str, action: str, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ControlError(400, "the request body must be a JSON object")
        self._job(job_id)  # 404 for an unknown job
        if action == "pause":
            await self._call_jobs("pause_job", job_id)
        elif action == "resume":
            await self._call_jobs("resume_job", job_id)
        elif action == "fail":
            code, message = body.get("code", "EmulatedFailure"), body.get("message", "failed through the control API")
            if not isinstance(code, str) or not isinstance(message, str):
                raise ControlError(400, "fail takes JSON strings 'code' and 'message'")
            await self._call_jobs("force_job_outcome", job_id, "Failed", code, message)
        else:
            raise ControlError(404, f"unknown job action {action!r}: use pause, resume or fail")
        return {"JobId": job_id, "State": self._job(job_id).get("State")}

    async def _call_jobs(self, method: str, *args: Any) -> None:
        if self.jobs is None:
            raise ControlError(501, "job control needs the Emulator facade (this app was built without one)")
        try:
            result = getattr(self.jobs, method)(*args)
            if inspect.isawaitable(result):
                await result
        except (KeyError, ValueError) as exc:
            raise ControlError(400, str(exc).strip("'\"")) from None

    # -- data ----------------------------------------------------------------------------------------------------
    def _bucket(self, name: str) -> str:
        full = self.state.full_bucket(name)
        if not self.state.store.has_bucket(full):
            raise ControlError(404, f"no bucket {full!r} (start the emulator with --bucket NAME to create it)")
        return full

    def _records(self, bucket: str, query: dict[str, str]) -> list[Any]:
        prefix = query.get("prefix", "")
        out: list[Any] = []
        marker = ""
        while True:
            res = self.state.store.list(bucket, prefix=prefix, marker=marker, max_keys=1000)
            out.extend(res.contents)
            if not res.is_truncated:
                return out
            marker = res.next_marker

    def _job(self, job_id: str) -> dict[str, Any]:
        for job in self.state.jobs.list_jobs():
            if job.get("JobId") == job_id:
                return dict(job)
        raise ControlError(404, f"no job {job_id!r}")

    async def _download(self, bucket: str, key: str, send: Any) -> None:
        rec = self.state.store.get(bucket, key)
        if rec is None:
            raise ControlError(404, f"no object {key!r} in {bucket}")
        await send_plain(send, 200, bytes(rec.data), rec.content_type, {**_DOWNLOAD_HEADERS, "ETag": rec.etag})

    # -- the object view ---------------------------------------------------------------------------------------
    async def _view(self, route: list[str], query: dict[str, str], send: Any) -> None:
        base = f"{CONTROL_PREFIX}{VIEW}/{quote(self.token, safe='')}"
        if route in ([], [""]):
            buckets = self.state.store.buckets()
            items = [f'<li><a href="{base}/objects/{quote(b)}/">{html.escape(b)}</a></li>' for b in buckets]
            items.append(f'<li><a href="{base}/jobs/">jobs</a></li>')
            await _page(send, "Tencent CI emulator", f"<ul>{''.join(items)}</ul>")
            return
        if route[0] == "objects" and len(route) >= 2:
            bucket = self._bucket(route[1])
            key = "/".join(route[2:])
            if key:
                await self._download(bucket, key, send)
                return
            rows = "".join(
                f'<tr><td><a href="{base}/objects/{quote(bucket)}/{quote(r.key, safe="/")}">{html.escape(r.key)}</a>'
                f"</td><td>{r.size}</td><td>{html.escape(r.content_type)}</td>"
                f"<td>{html.escape(r.last_modified.isoformat())}</td></tr>"
                for r in self._records(bucket, query)
            )
            table = f"<table><tr><th>key</th><th>bytes</th><th>type</th><th>modified</th></tr>{rows}</table>"
            await _page(send, f"{bucket}/{query.get('prefix', '')}", table)
            return
        if route[0] == "jobs" and route[1:] in ([], [""]):
            rows = "".join(
                f'<tr><td><a href="{base}/jobs/{quote(str(j.get("bucket", "")))}/{quote(str(j["JobId"]))}">'
                f"{html.escape(str(j['JobId']))}</a></td><td>{html.escape(str(j.get('State')))}</td></tr>"
                for j in self.state.jobs.list_jobs()
            )
            await _page(send, "jobs", f"<table><tr><th>job</th><th>state</th></tr>{rows}</table>")
            return
        if route[0] == "jobs" and len(route) == 3:
            job = self._job(route[2])
            if job.get("bucket") != self.state.full_bucket(route[1]):
                raise ControlError(404, f"no job {route[2]!r} in {route[1]}")
            await _page(send, f"job {route[2]}", _job_html(base, job))
            return
        raise ControlError(404, "unknown object view page")


def _job_html(base: str, job: dict[str, Any]) -> str:
    """A job's state, times and the links to its input and output objects (no CallBack URL: it holds a token)."""
    detail = job.get("detail") or {}
    bucket = str(job.get("bucket", ""))
    rows = [(name, detail.get(name, job.get(name))) for name in ("State", "Code", "Message", "CreationTime")]
    rows += [(name, detail.get(name)) for name in ("StartTime", "EndTime")]
    links = []
    source = (detail.get("Input") or {}).get("Object")
    output = ((detail.get("Operation") or {}).get("Output")) or {}
    for label, obj_bucket, key in (("input", bucket, source), ("output", output.get("Bucket"), output.get("Object"))):
        if key:
            href = f"{base}/objects/{quote(str(obj_bucket or bucket))}/{quote(str(key).lstrip('/'), safe='/')}"
            links.append(f'<li>{label}: <a href="{href}">{html.escape(str(key))}</a></li>')
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{table}</table><ul>{''.join(links)}</ul>"


def _object_entry(rec: Any) -> dict[str, Any]:
    return {
        "key": rec.key,
        "size": rec.size,
        "etag": rec.etag,
        "content_type": rec.content_type,
        "last_modified": rec.last_modified.isoformat(),
    }


def _parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"the request body is not JSON: {exc}") from None


async def _json(send: Any, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
    await send_plain(send, status, json.dumps(payload, default=str).encode("utf-8"), "application/json", headers)


async def _page(send: Any, title: str, content: str) -> None:
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{content}</body></html>"
    )
    await send_plain(send, 200, doc.encode("utf-8"), "text/html; charset=utf-8", _HTML_HEADERS)
