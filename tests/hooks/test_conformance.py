"""Conformance of our job requests with cos-python-sdk-v5's job helpers (issue 12 item 7).

For get, list, cancel and submit, the same call is made three ways against a recording HTTP proxy on 127.0.0.1:
the SDK's helper (``ci_get_media_jobs``, ``ci_list_media_jobs``, ``ci_cancel_jobs``, ``ci_create_media_jobs``,
through requests), our async call (httpx) and our sync call (requests), each signed by the SDK's signer. Method,
path, query, the signed header and parameter lists (``q-header-list`` / ``q-url-param-list``) and the body must
be the same, except for the two deliberate differences, asserted exactly: the list sends ``queueType=AIProcess``
(intl 1045/73114) and the submit sends ``Content-Type: application/xml`` (cn 460/42865, cos-go-sdk-v5 ``cos.go``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from qcloud_cos import CosConfig, CosS3Client

from airflow_provider_tencent_ci.hooks.ci import CIHook

from .conftest import FAST_RETRY, set_conn
from .test_ci_hook import SVB_REQUEST

REGION = "ap-guangzhou"
BUCKET = "conformbucket-1250000000"
SECRET_ID = "AKIDconformance00000000000000000000"
SECRET_KEY = "conformance-secret-key-0000000000"
TOKEN = "conformance-session-token-00000000000"
REPLY = (
    b"<Response><JobsDetail><JobId>j1</JobId><State>Submitted</State><Tag>SegmentVideoBody</Tag></JobsDetail>"
    b"<NextToken></NextToken></Response>"
)


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def auth_list(self, name: str) -> list[str]:
        fields = dict(part.split("=", 1) for part in self.headers["authorization"].split("&"))
        return [item for item in fields[name].split(";") if item]


class _Recorder:
    """An HTTP proxy stand-in that records each request (absolute-form target) and answers a JobsDetail."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = urlsplit(self.path)
                outer.requests.append(
                    Recorded(
                        self.command,
                        target.path,
                        dict(parse_qsl(target.query, keep_blank_values=True)),
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(REPLY)))
                self.end_headers()
                self.wfile.write(REPLY)

            do_GET = do_PUT = do_POST = _record

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self) -> Recorded:
        assert len(self.requests) == 1, self.requests
        return self.requests.pop()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    rec = _Recorder()
    yield rec
    rec.close()


@pytest.fixture
def sdk(recorder: _Recorder) -> CosS3Client:
    conf = CosConfig(
        Region=REGION,
        SecretId=SECRET_ID,
        SecretKey=SECRET_KEY,
        Token=TOKEN,
        Scheme="http",
        Proxies={"http": recorder.url},
    )
    return CosS3Client(conf, retry=0)


@pytest.fixture
def hook(recorder: _Recorder, monkeypatch: pytest.MonkeyPatch) -> CIHook:
    extras = {"region": REGION, "use_https": False, "proxy": recorder.url, "token": TOKEN, **FAST_RETRY}
    return CIHook(set_conn(monkeypatch, "tc_conformance", SECRET_ID, SECRET_KEY, extras))


def _ours(recorder: _Recorder, sync: Callable[[CIHook], Any], coro: Callable[[CIHook], Any], hook: CIHook) -> Recorded:
    """Our request through httpx, after checking that our requests-based sync call sent the very same."""
    sync(hook)
    sent_sync = recorder.take()

    async def run() -> None:
        try:
            await coro(hook)
        finally:
            await hook.aclose()

    asyncio.run(run())
    sent_async = recorder.take()
    assert _comparable(sent_sync) == _comparable(sent_async)
    return sent_async


def _comparable(r: Recorded) -> dict[str, Any]:
    return {
        "method": r.method,
        "path": r.path,
        "query": r.query,
        "signed_headers": r.auth_list("q-header-list"),
        "signed_params": r.auth_list("q-url-param-list"),
        "body": r.body,
        "host": r.headers["host"],
        "token": r.headers.get("x-ci-security-token"),
    }


def test_get_jobs_matches_the_sdk(recorder: _Recorder, sdk: CosS3Client, hook: CIHook) -> None:
    sdk.ci_get_media_jobs(Bucket=BUCKET, JobIDs="j1,j2")
    theirs = recorder.take()
    ours = _ours(
        recorder, lambda h: h.get_jobs(BUCKET, ["j1", "j2"]), lambda h: h.aget_jobs(BUCKET, ["j1", "j2"]), hook
    )
    assert _comparable(ours) == _comparable(theirs)
    assert ours.method == "GET" and ours.path == "/jobs/j1%2Cj2" and ours.headers["x-ci-security-token"] == TOKEN
    assert ours.auth_list("q-header-list") == ["host", "x-ci-security-token"]


def test_list_jobs_matches_the_sdk_plus_the_queue_type(recorder: _Recorder, sdk: CosS3Client, hook: CIHook) -> None:
    tz = timezone(timedelta(hours=8))
    start, end = datetime(2024, 1, 1, tzinfo=tz), datetime(2024, 1, 2, 12, 30, tzinfo=tz)
    sdk.ci_list_media_jobs(
        Bucket=BUCKET,
        Tag="SegmentVideoBody",
        QueueId="p0123456789abcdef",
        StartCreationTime="2024-01-01T00:00:00+0800",
        EndCreationTime="2024-01-02T12:30:00+0800",
        OrderByTime="Asc",
        States="Success,Failed",
        Size=5,
        NextToken="next page",
    )
    theirs = recorder.take()
    args: dict[str, Any] = {
        "states": ["Success", "Failed"],
        "start_creation_time": start,
        "end_creation_time": end,
        "size": 5,
        "next_token": "next page",
        "order_by_time": "Asc",
        "queue_id": "p0123456789abcdef",
    }
    ours = _ours(
        recorder,
        lambda h: h.list_jobs(BUCKET, "SegmentVideoBody", **args),
        lambda h: h.alist_jobs(BUCKET, "SegmentVideoBody", **args),
        hook,
    )
    # The one deliberate difference: queueType, sent and signed.
    assert {k: v for k, v in ours.query.items() if k not in theirs.query} == {"queueType": "AIProcess"}
    assert set(ours.auth_list("q-url-param-list")) - set(theirs.auth_list("q-url-param-list")) == {"queuetype"}
    mine = _comparable(ours)
    mine["query"] = {k: v for k, v in ours.query.items() if k != "queueType"}
    mine["signed_params"] = [p for p in mine["signed_params"] if p != "queuetype"]
    assert mine == _comparable(theirs)
    assert ours.query["startCreationTime"] == "2024-01-01T00:00:00+0800" and ours.query["nextToken"] == "next page"


def test_cancel_job_matches_the_sdk(recorder: _Recorder, sdk: CosS3Client, hook: CIHook) -> None:
    sdk.ci_cancel_jobs(Bucket=BUCKET, JobID="j1")
    theirs = recorder.take()
    ours = _ours(recorder, lambda h: h.cancel_job(BUCKET, "j1"), lambda h: h.acancel_job(BUCKET, "j1"), hook)
    assert _comparable(ours) == _comparable(theirs)
    assert ours.method == "PUT" and ours.path == "/jobs/j1" and ours.query == {"cancel": ""}
    assert ours.auth_list("q-url-param-list") == []  # "?cancel" is sent but not signed, as the SDK does


def test_submit_job_matches_the_sdk_plus_the_content_type(recorder: _Recorder, sdk: CosS3Client, hook: CIHook) -> None:
    sdk.ci_create_media_jobs(Bucket=BUCKET, Jobs=dict(SVB_REQUEST), Lst={})
    theirs = recorder.take()
    ours = _ours(
        recorder, lambda h: h.submit_job(BUCKET, SVB_REQUEST), lambda h: h.asubmit_job(BUCKET, SVB_REQUEST), hook
    )
    # The one deliberate difference: Content-Type application/xml, sent and signed.
    assert ours.headers["content-type"] == "application/xml" and "content-type" not in theirs.headers
    assert set(ours.auth_list("q-header-list")) - set(theirs.auth_list("q-header-list")) == {"content-type"}
    mine = _comparable(ours)
    mine["signed_headers"] = [h for h in mine["signed_headers"] if h != "content-type"]
    assert mine == _comparable(theirs)
    assert b"<Request><Tag>SegmentVideoBody</Tag><Input><Object>in/video.mp4</Object></Input>" in ours.body
