"""Callback bodies (TaskFinish, WorkflowFinish; XML or JSON under any Content-Type) and the transport-independent
handling core, driven with an in-memory body reader as a second receiver (an ASGI app) would drive it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_tencent_ci.triggers import callback_listener as cl
from airflow_provider_tencent_ci.triggers.callbacks import parsing
from airflow_provider_tencent_ci.triggers.callbacks.core import CallbackRouter, Limits, handle_callback

JOB_A, JOB_B = "a" + "1" * 32, "a" + "2" * 32

# Shapes from cos-go-sdk-v5 ci_media.go (WorkflowExecutionNotifyBody, MediaProcessJobDetail.Workflow).
WORKFLOW_FINISH_XML = f"""<Response><EventName>WorkflowFinish</EventName><WorkflowExecution>
<RunId>i70ae991a152911ecb1935254002aafa0</RunId><BucketId>examplebucket-1250000000</BucketId>
<Object>in/video.mp4</Object><CosHeaders><Key>x-cos-meta-a</Key><Value>1</Value></CosHeaders>
<WorkflowId>w29ba54d02b7340dd9fb44eb5beb786b9</WorkflowId><WorkflowName>svb</WorkflowName>
<CreateTime>2026-01-01T00:00:00+0800</CreateTime><State>Success</State>
<Tasks><Type>SegmentVideoBody</Type><CreateTime>2026-01-01T00:00:01+0800</CreateTime>
<EndTime>2026-01-01T00:00:09+0800</EndTime><State>Success</State><JobId>{JOB_A}</JobId><Name>SVB_1</Name>
<TemplateId>t1</TemplateId><TemplateName>tpl</TemplateName></Tasks>
<Tasks><Type>Snapshot</Type><State>Failed</State><JobId>{JOB_B}</JobId><Name>Snap_1</Name></Tasks>
<Tasks><Type>SegmentVideoBody</Type><State>Success</State><JobId>{JOB_A}</JobId></Tasks>
</WorkflowExecution></Response>""".encode()


def test_json_body_under_an_xml_content_type_and_xml_under_json() -> None:
    body = json.dumps({"EventName": "TaskFinish", "JobsDetail": {"JobId": JOB_A, "State": "Success", "Code": 0}})
    as_xml = cl.parse_callback(body.encode(), "application/xml")
    assert (as_xml.fmt, as_xml.jobs[0]["JobId"], as_xml.jobs[0]["Code"]) == ("JSON", JOB_A, "0")
    xml = f"<Response><JobsDetail><JobId>{JOB_A}</JobId><State>Failed</State></JobsDetail></Response>"
    as_json = cl.parse_callback(xml.encode(), "application/json")
    assert (as_json.fmt, as_json.jobs[0]["State"], as_json.event_name) == ("XML", "Failed", "TaskFinish")
    bom = cl.parse_callback(b"\xef\xbb\xbf  \n" + xml.encode(), "text/plain")
    assert bom.fmt == "XML"
    for bad in (b"", b"   ", b"EventName=TaskFinish", b"\x00<Response/>"):
        with pytest.raises(cl.CallbackParseError):
            cl.parse_callback(bad)


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
def test_workflow_finish_names_its_tasks_jobs(fmt: str) -> None:
    body = WORKFLOW_FINISH_XML
    if fmt == "JSON":
        # CallBackFormat=JSON: the same fields; one task as a single object, numbers as numbers.
        body = json.dumps(
            {
                "Response": {
                    "EventName": "WorkflowFinish",
                    "WorkflowExecution": {
                        "RunId": "i70ae",
                        "WorkflowId": "w29b",
                        "WorkflowName": "svb",
                        "State": "Success",
                        "Object": "in/v.mp4",
                        "CreateTime": "2026-01-01T00:00:00+0800",
                        "Tasks": [
                            {
                                "Type": "SegmentVideoBody",
                                "State": "Success",
                                "JobId": JOB_A,
                                "ResultInfo": {"ObjectCount": 1},
                            },
                            {"Type": "Snapshot", "State": "Failed", "JobId": JOB_B},
                        ],
                    },
                }
            }
        ).encode()
    message = cl.parse_callback(body, "application/xml")
    assert message.fmt == fmt and message.event_name == "WorkflowFinish"
    assert message.jobs == []
    assert message.workflow is not None and message.workflow["State"] == "Success"
    assert message.job_ids() == [JOB_A, JOB_B]  # unique, in order
    assert message.for_job(JOB_B)[0]["State"] == "Failed"
    if fmt == "JSON":
        assert message.workflow["Tasks"][0]["ResultInfo"]["ObjectCount"] == "1"
    one_task = json.dumps(
        {
            "EventName": "WorkflowFinish",
            "WorkflowExecution": {
                "RunId": "r",
                "State": "Failed",
                "Tasks": {"Type": "SegmentVideoBody", "State": "Failed", "JobId": JOB_B},
            },
        }
    )
    assert cl.parse_callback(one_task.encode()).job_ids() == [JOB_B]


def test_task_finish_of_a_workflow_job_carries_its_workflow() -> None:
    body = (
        f"<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>{JOB_A}</JobId><State>Success</State>"
        "<Workflow><Name>SVB_1</Name><RunId>i70ae</RunId><WorkflowId>w29b</WorkflowId>"
        "<WorkflowName>svb</WorkflowName></Workflow></JobsDetail></Response>"
    ).encode()
    message = cl.parse_callback(body)
    assert message.workflow == {"Name": "SVB_1", "RunId": "i70ae", "WorkflowId": "w29b", "WorkflowName": "svb"}
    assert message.job_ids() == [JOB_A] and message.for_job(JOB_A)[0]["State"] == "Success"
    plain = cl.parse_callback(
        f"<Response><JobsDetail><JobId>{JOB_A}</JobId><State>Success</State></JobsDetail>"
        f"<JobsDetail><JobId>{JOB_A}</JobId><State>Success</State></JobsDetail></Response>".encode()
    )
    assert plain.workflow is None and plain.job_ids() == [JOB_A] and len(plain.jobs) == 2


@pytest.mark.parametrize(
    "doc",
    [
        {"EventName": "WorkflowFinish"},  # neither JobsDetail nor WorkflowExecution
        {"WorkflowExecution": {"State": "Success", "Tasks": []}},  # no RunId
        {"WorkflowExecution": "x"},
        {"JobsDetail": [{"JobId": JOB_A, "State": "Success"}] * (parsing.MAX_ENTRIES + 1)},
        {"WorkflowExecution": {"RunId": "r", "State": "S", "Tasks": [{"JobId": JOB_A}] * (parsing.MAX_ENTRIES + 1)}},
        {"JobsDetail": ["not an object"]},
        {"JobsDetail": {"JobId": JOB_A, "State": "Success"}, "EventName": ["x"]},
    ],
)
def test_refused_shapes(doc: dict[str, Any]) -> None:
    with pytest.raises(cl.CallbackParseError):
        cl.parse_callback(json.dumps(doc).encode())


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
def test_deep_nesting_is_a_parse_error(fmt: str) -> None:
    depth = 5000
    if fmt == "XML":
        body = f"<Response><JobsDetail>{'<a>' * depth}x{'</a>' * depth}</JobsDetail></Response>".encode()
    else:
        body = ('{"JobsDetail": ' + "[" * depth + "]" * depth + "}").encode()
    with pytest.raises(cl.CallbackParseError, match="deep"):
        cl.parse_callback(body)
    shallow = '{"JobsDetail": {"JobId": "a1", "State": "Success", "X": ' + "[" * 40 + "]" * 40 + "}}"
    with pytest.raises(cl.CallbackParseError, match="deep"):  # past the JSON decoder, the walk bounds it too
        cl.parse_callback(shallow.encode())


def _reader(body: bytes, chunk: int = 7) -> Any:
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] + [b""]

    async def read() -> bytes:
        return parts.pop(0) if parts else b""

    return read


def _run(router: CallbackRouter, path: str, headers: list[tuple[str, str]], body: bytes, **kw: Any) -> int:
    return asyncio.run(handle_callback(router, "POST", path, headers, _reader(body), **kw))


def test_core_routes_without_any_transport() -> None:
    token = cl.token_for_nonce(cl.new_nonce())
    body = json.dumps({"JobsDetail": {"JobId": JOB_A, "State": "Success"}}).encode()
    length = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
    router = CallbackRouter()
    assert _run(router, f"/{token}", length, body) == 200
    assert router.early[token][0].job_ids() == [JOB_A] and router.buffered == 1
    assert _run(router, f"/tencent-ci/callbacks/{token}", length, body, base_path="/tencent-ci/callbacks") == 200
    cases = {
        "prefix not configured": (f"/x/{token}", length, 404),
        "configured prefix, other path": (f"/tencent-ci/other/{token}", length, 404),
        "extra segment": (f"/{token}/x", length, 404),
        "double slash": (f"//{token}", length, 404),
        "forged mac": (f"/{token[:-4]}AAAA", length, 404),
        "no length": (f"/{token}", [("Content-Type", "application/json")], 411),
        "chunked": (f"/{token}", [("Transfer-Encoding", "chunked")], 411),
        "differing lengths": (f"/{token}", [("Content-Length", str(len(body))), ("Content-Length", "5")], 400),
        "differing in one header": (f"/{token}", [("Content-Length", f"{len(body)}, 5")], 400),
        "plus sign": (f"/{token}", [("Content-Length", f"+{len(body)}")], 400),
        "negative": (f"/{token}", [("Content-Length", "-1")], 400),
        "over the cap": (f"/{token}", [("Content-Length", str(Limits().max_body_bytes + 1))], 413),
    }
    for name, (path, headers, status) in cases.items():
        got = _run(router, path, headers, body, base_path="/tencent-ci/callbacks")
        assert got == status, (name, got)
    same_twice = [("Content-Length", str(len(body))), ("content-length", str(len(body)))]
    assert _run(router, f"/{token}", same_twice, body) == 200  # equal duplicates are one length (RFC 9112 6.3)
    assert asyncio.run(handle_callback(router, "GET", f"/{token}", [], _reader(b""))) == 405
    assert router.buffered == 3
