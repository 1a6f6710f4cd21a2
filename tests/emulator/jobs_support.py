"""Helpers shared by the emulator's job tests: a callback receiver, request builders, plain-HTTP job calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree

import httpx

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
INPUT = b"\x00\x00\x00\x18ftypmp42" + b"fake video payload" * 50


class Receiver:
    """A tiny HTTP server on 127.0.0.1 recording callback POSTs; answers ``statuses`` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._lock:
                    outer.requests.append(
                        {"path": self.path, "content_type": self.headers.get("Content-Type"), "body": body}
                    )
                    status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ci-callback"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def job_request(**overrides: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "Tag": "SegmentVideoBody",
        "Input": {"Object": "input/test.mp4"},
        "Operation": {
            "SegmentVideoBody": {"Mode": "Mask"},
            "UserData": "This is my data.",
            "JobLevel": "0",
            "Output": {"Region": REGION, "Bucket": BUCKET, "Object": "output/out.mp4"},
        },
    }
    for key, value in overrides.items():
        if key in ("SegmentVideoBody", "UserData", "JobLevel", "Output"):
            if value is None:
                req["Operation"].pop(key, None)
            else:
                req["Operation"][key] = value
        elif value is None:
            req.pop(key, None)
        else:
            req[key] = value
    return req


def submit(client: Any, **overrides: Any) -> dict[str, Any]:
    resp = client.ci_create_media_jobs(Bucket=BUCKET, Jobs=job_request(**overrides), Lst={})
    return resp["JobsDetail"][0]  # type: ignore[no-any-return]


def describe(client: Any, job_id: str) -> dict[str, Any]:
    return client.ci_get_media_jobs(Bucket=BUCKET, JobIDs=job_id)["JobsDetail"][0]  # type: ignore[no-any-return]


def state_of(client: Any, job_id: str) -> str:
    return str(describe(client, job_id)["State"])


def ci_get(emu: Any, path: str, params: dict[str, str]) -> httpx.Response:
    """A signed GET on the bucket's CI host with any query (the SDK's ``ci_list_media_jobs`` cannot send
    ``queueType``, ``inputObject`` or ``workflowId``)."""
    auth = emu.cos_client().get_auth(Method="GET", Bucket=BUCKET, Key=path, Params=params, UseCiEndPoint=True)
    return httpx.get(
        f"{emu.url}{path}",
        params=params,
        headers={"Host": f"{BUCKET}.ci.{REGION}.myqcloud.com", "Authorization": auth},
        trust_env=False,
    )


def list_ids(emu: Any, **params: str) -> list[str]:
    """JobIds of ``GET /jobs`` with ``params`` (tag defaults to SegmentVideoBody, size to 100), parsed plainly."""
    query = {"tag": "SegmentVideoBody", "size": "100", **params}
    resp = ci_get(emu, "/jobs", query)
    assert resp.status_code == 200, resp.text
    root = ElementTree.fromstring(resp.content)
    return [el.findtext("JobId") or "" for el in root.findall("JobsDetail")]
