"""The live smoke's own tools, on loopback (these run in ``make test``; they reach no cloud).

The recorder must report framing as sent, and the smoke's "once" and "three times" detect-url values must be what
the hook really puts on the wire: checked here by pointing the real hook (through cos-python-sdk-v5 and requests)
at the recorder as its HTTP proxy.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.live._capture import Receiver
from tests.live._detect_url import SEED_ON_THE_WIRE, SEED_URL, pre_encode
from tests.live._report import body_shape, header_lines, redact

JSON_CALLBACK = json.dumps({"EventName": "TaskFinish", "JobsDetail": [{"JobId": "j1", "State": "Success"}]}).encode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def _post(port: int, body: bytes, *, chunked: bool) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/xml"}
        if chunked:
            conn.request("POST", "/cb/token1", body=iter([body[:10], body[10:]]), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/cb/token1", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [True, False])
def test_recorder_reports_framing_and_body(receiver: Receiver, chunked: bool) -> None:
    assert _post(receiver.port, JSON_CALLBACK, chunked=chunked) == 200
    seen = receiver.next_request(timeout=10)
    assert seen is not None and seen.complete
    assert seen.request_line == "POST /cb/token1 HTTP/1.1"
    assert seen.header("content-type") == "application/xml"
    assert seen.body == JSON_CALLBACK
    assert seen.framing == ("chunked" if chunked else f"Content-Length: {len(JSON_CALLBACK)}")
    if chunked:
        assert seen.data_events == 2
    fmt, skeleton = body_shape(seen.body)
    assert fmt == "JSON"
    assert skeleton == {"EventName": "str", "JobsDetail": {"<list of 1>": {"JobId": "str", "State": "str"}}}


def test_body_shape_reads_xml_and_refuses_garbage() -> None:
    fmt, skeleton = body_shape(
        b"<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>j</JobId></JobsDetail></Response>"
    )
    assert fmt == "XML" and "JobsDetail" in str(skeleton)
    assert body_shape(b"not a document")[0] == "unreadable"


def test_redaction_of_printed_text() -> None:
    signed = "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/k.jpg?q-sign-algorithm=sha1&q-ak=AKIDx&q-signature=abc"
    text = redact(f"failed for {pre_encode(signed, 2)} in b-1250000000", "b-1250000000")
    assert "AKIDx" not in text and "abc" not in text and "b-1250000000" not in text
    assert header_lines([("Host", "me.example.net"), ("Content-Type", "application/json")]) == [
        "Host: <hidden>",
        "Content-Type: application/json",
    ]


def test_seed_example_is_three_encodings() -> None:
    assert pre_encode(SEED_URL, 3) == SEED_ON_THE_WIRE


@pytest.mark.parametrize(("pre", "on_the_wire"), [(0, pre_encode(SEED_URL, 1)), (2, SEED_ON_THE_WIRE)])
def test_hook_puts_detect_url_on_the_wire_as_the_smoke_says(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, pre: int, on_the_wire: str
) -> None:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    extra = {"region": "ap-guangzhou", "scheme": "http", "proxy": f"http://127.0.0.1:{receiver.port}"}
    conn = {"conn_type": "tencentcloud", "login": "AKIDtest", "password": "secret-key", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_TENCENT_LIVE_TOOLS", json.dumps(conn))
    hook = CIHook(tencentcloud_conn_id="tencent_live_tools")
    with hook.ci_process("examplebucket-1250000000", "", "AIPortraitMatting", detect_url=pre_encode(SEED_URL, pre)):
        pass
    seen = receiver.next_request(timeout=10)
    assert seen is not None
    query = dict(part.split("=", 1) for part in urlsplit(seen.target).query.split("&"))
    assert query["detect-url"] == on_the_wire
