"""CI SegmentVideoBody jobs through the real COS SDK: submit, query, list, cancel, state machine, callbacks."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from qcloud_cos.cos_exception import CosServiceError

from airflow_provider_tencent_ci.emulator.faults import FaultConfig
from airflow_provider_tencent_ci.emulator.server import Emulator
from tests.emulator.jobs_support import (
    BUCKET,
    INPUT,
    REGION,
    Receiver,
    describe,
    state_of,
    submit,
    wait_for,
)


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.put_object(BUCKET, "input/test.mp4", INPUT, content_type="video/mp4")
    return tencent_conn


@pytest.fixture
def client(emu: Any) -> Any:
    return emu.cos_client()


# -- submit ---------------------------------------------------------------------------------------------------
def test_submit_answers_the_documented_jobs_detail(emu: Any, client: Any) -> None:
    emu.set_job_timing(60, 60)
    job = submit(client)
    assert re.fullmatch(r"a[0-9a-f]{32}", job["JobId"])
    assert job["Code"] == "Success" and job["State"] == "Submitted" and job["Tag"] == "SegmentVideoBody"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0800", job["CreationTime"])
    assert job["StartTime"] == "-" and job["EndTime"] == "-"
    assert re.fullmatch(r"p[0-9a-f]{32}", job["QueueId"])
    assert job["Input"] == {"BucketId": BUCKET, "Object": "input/test.mp4", "Region": REGION}
    op = job["Operation"]
    assert op["SegmentVideoBody"] == {"Mode": "Mask"}
    assert op["UserData"] == "This is my data." and op["JobLevel"] == "0"
    assert op["Output"] == {"Region": REGION, "Bucket": BUCKET, "Object": "output/out.mp4"}
    assert "MediaResult" not in op and "MediaInfo" not in op
    assert emu.stats.count("CreateJob", ok=True) == 1


def test_job_runs_to_success_and_writes_its_output(emu: Any, client: Any) -> None:
    emu.set_job_timing(0.05, 0.05)
    job = submit(client)
    wait_for(lambda: state_of(client, job["JobId"]) == "Success")
    done = describe(client, job["JobId"])
    assert done["StartTime"] != "-" and done["EndTime"] != "-"
    out = emu.get_object(BUCKET, "output/out.mp4")
    assert out is not None and out.data == INPUT  # a video is copied: the emulator cannot cut it out
    result = done["Operation"]["MediaResult"]["OutputFile"]
    assert result == {"Bucket": BUCKET, "Region": REGION, "ObjectName": "output/out.mp4"}
    assert done["Operation"]["MediaInfo"]["Format"]["Size"] == str(len(INPUT))


def test_image_input_gets_a_real_mask(emu: Any, client: Any) -> None:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (120, 90), (0, 200, 0))
    ImageDraw.Draw(img).ellipse((30, 20, 90, 80), fill=(200, 100, 90))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    emu.put_object(BUCKET, "input/frame.png", buf.getvalue())
    emu.set_job_timing(0, 0)
    job = submit(
        client, Input={"Object": "input/frame.png"}, Output={"Region": REGION, "Bucket": BUCKET, "Object": "o/m.png"}
    )
    wait_for(lambda: state_of(client, job["JobId"]) == "Success")
    mask = Image.open(io.BytesIO(emu.get_object(BUCKET, "o/m.png").data))
    assert mask.mode == "L" and mask.size == (120, 90)
    assert mask.getpixel((2, 2)) == 0 and mask.getpixel((60, 50)) == 255


def test_state_machine_under_test_control(emu: Any, client: Any) -> None:
    emu.set_job_timing(0, 60)
    job = submit(client)
    job_id = job["JobId"]
    wait_for(lambda: state_of(client, job_id) == "Running")
    assert describe(client, job_id)["StartTime"] != "-"
    emu.force_job_outcome(job_id, "Failed", code="InternalError", message="boom")
    failed = describe(client, job_id)
    assert (failed["State"], failed["Code"], failed["Message"]) == ("Failed", "InternalError", "boom")
    assert "MediaResult" not in failed["Operation"]
    assert emu.get_object(BUCKET, "output/out.mp4") is None
    rec = next(j for j in emu.jobs if j["JobId"] == job_id)
    assert rec["State"] == "Failed" and rec["UserData"] == "This is my data."


def test_pause_and_resume(emu: Any, client: Any) -> None:
    emu.set_job_timing(60, 0)
    job_id = submit(client)["JobId"]
    emu.pause_job(job_id)
    assert state_of(client, job_id) == "Pause"
    emu.set_job_timing(0, 0)
    assert state_of(client, job_id) == "Pause"  # a paused job does not move
    emu.resume_job(job_id)
    wait_for(lambda: state_of(client, job_id) == "Success")


def test_forced_success_writes_output(emu: Any, client: Any) -> None:
    emu.set_job_timing(60, 60)
    job_id = submit(client)["JobId"]
    emu.force_job_outcome(job_id, "Success")
    done = describe(client, job_id)
    assert done["State"] == "Success" and done["Operation"]["MediaResult"]["OutputFile"]["ObjectName"]
    assert emu.get_object(BUCKET, "output/out.mp4") is not None


# -- validation -----------------------------------------------------------------------------------------------
LONG = "x" * 1025
BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("tag", {"Tag": "Transcode"}),
    ("no input object", {"Input": {"Object": ""}}),
    ("missing input", {"Input": {"Object": "input/none.mp4"}}),
    ("mode", {"SegmentVideoBody": {"Mode": "Alpha"}}),
    ("segment type", {"SegmentVideoBody": {"SegmentType": "CatSeg"}}),
    ("red 256", {"SegmentVideoBody": {"Mode": "Foreground", "BackgroundRed": "256"}}),
    ("green -1", {"SegmentVideoBody": {"BackgroundGreen": "-1"}}),
    ("threshold text", {"SegmentVideoBody": {"BinaryThreshold": "high"}}),
    ("remove blue", {"SegmentVideoBody": {"SegmentType": "SolidColorSeg", "RemoveBlue": "300"}}),
    ("combination without logo", {"SegmentVideoBody": {"Mode": "Combination"}}),
    (
        "logo in another bucket",
        {
            "SegmentVideoBody": {
                "Mode": "Combination",
                "BackgroundLogoUrl": f"http://other-1250000000.cos.{REGION}.myqcloud.com/bg.png",
            }
        },
    ),
    ("user data too long", {"UserData": LONG}),
    ("user data not ascii", {"UserData": "héllo"}),
    ("job level", {"JobLevel": "3"}),
    ("output without bucket", {"Output": {"Region": REGION, "Object": "o.mp4"}}),
    ("output without object", {"Output": {"Region": REGION, "Bucket": BUCKET}}),
    ("output without region", {"Output": {"Bucket": BUCKET, "Object": "o.mp4"}}),
    ("output bucket missing", {"Output": {"Region": REGION, "Bucket": "ghost-1250000000", "Object": "o.mp4"}}),
    ("callback format", {"CallBackFormat": "YAML"}),
    ("callback type", {"CallBackType": "Kafka"}),
    ("tdmq without config", {"CallBackType": "TDMQ"}),
    (
        "tdmq mode",
        {"CallBackType": "TDMQ", "CallBackMqConfig": {"MqRegion": "bj", "MqMode": "Stream", "MqName": "q"}},
    ),
    ("tdmq without name", {"CallBackType": "TDMQ", "CallBackMqConfig": {"MqRegion": "bj", "MqMode": "Queue"}}),
    ("callback not a url", {"CallBack": "ftp://example.com/x"}),
]


@pytest.mark.parametrize(("case", "overrides"), BAD_REQUESTS, ids=[c for c, _ in BAD_REQUESTS])
def test_documented_constraints_are_refused(emu: Any, client: Any, case: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(CosServiceError) as info:
        submit(client, **overrides)
    err = info.value
    assert (err.get_status_code(), err.get_error_code()) == (400, "InvalidArgument"), case
    assert emu.jobs == []


def test_boundary_values_are_accepted(emu: Any, client: Any) -> None:
    emu.put_object(BUCKET, "bg.png", b"background")
    emu.set_job_timing(60, 60)
    job = submit(
        client,
        SegmentVideoBody={
            "Mode": "Combination",
            "SegmentType": "GreenScreenSeg",
            "BackgroundLogoUrl": f"https://{BUCKET}.cos.{REGION}.myqcloud.com/bg.png",
            "BinaryThreshold": "255",
        },
        UserData="~" * 1024,
        JobLevel="2",
        CallBack="no",
    )
    assert job["Operation"]["SegmentVideoBody"]["Mode"] == "Combination"
    assert job["Operation"]["JobLevel"] == "2"


def test_malformed_xml_is_refused(emu: Any) -> None:
    import httpx

    client = emu.cos_client()
    auth = client.get_auth(Method="POST", Bucket=BUCKET, Key="/jobs", UseCiEndPoint=True)
    resp = httpx.post(
        f"{emu.url}/jobs",
        content=b"<Request><Tag>SegmentVideoBody",
        headers={"Host": f"{BUCKET}.ci.{REGION}.myqcloud.com", "Authorization": auth},
        trust_env=False,
    )
    assert resp.status_code == 400 and b"MalformedXML" in resp.content


# -- query, list, cancel ----------------------------------------------------------------------------------------
def test_query_several_ids_reports_unknown_ones(emu: Any, client: Any) -> None:
    emu.set_job_timing(60, 60)
    a = submit(client)["JobId"]
    b = submit(client)["JobId"]
    resp = client.ci_get_media_jobs(Bucket=BUCKET, JobIDs=f"{a},anotajob00000000000000000000000000,{b}")
    assert [j["JobId"] for j in resp["JobsDetail"]] == [a, b]
    assert resp["NonExistJobIds"] == "anotajob00000000000000000000000000"
    resp = client.ci_get_media_jobs(Bucket=BUCKET, JobIDs="ax1,ax2")
    assert resp.get("JobsDetail", []) == []
    assert resp["NonExistJobIds"] == ["ax1", "ax2"]
    assert emu.stats.count("DescribeJobs") == 2


def test_list_filters_orders_and_paginates(emu: Any, client: Any) -> None:
    emu.set_job_timing(60, 60)
    ids = [submit(client)["JobId"] for _ in range(5)]
    emu.force_job_outcome(ids[1], "Failed")
    page1 = client.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody", Size=2, OrderByTime="Asc")
    assert [j["JobId"] for j in page1["JobsDetail"]] == ids[:2]
    assert page1["NextToken"]
    page2 = client.ci_list_media_jobs(
        Bucket=BUCKET, Tag="SegmentVideoBody", Size=2, OrderByTime="Asc", NextToken=page1["NextToken"]
    )
    assert [j["JobId"] for j in page2["JobsDetail"]] == ids[2:4]
    page3 = client.ci_list_media_jobs(
        Bucket=BUCKET, Tag="SegmentVideoBody", Size=2, OrderByTime="Asc", NextToken=page2["NextToken"]
    )
    assert [j["JobId"] for j in page3["JobsDetail"]] == ids[4:]
    assert not page3["NextToken"]
    desc = client.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody", Size=100)
    assert [j["JobId"] for j in desc["JobsDetail"]] == ids[::-1]
    failed = client.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody", States="Failed")
    assert [j["JobId"] for j in failed["JobsDetail"]] == [ids[1]]
    both = client.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody", States="Failed,Submitted", Size=100)
    assert len(both["JobsDetail"]) == 5
    future = client.ci_list_media_jobs(
        Bucket=BUCKET, Tag="SegmentVideoBody", StartCreationTime="2099-01-01T00:00:00+0800"
    )
    assert future.get("JobsDetail", []) == []
    past = client.ci_list_media_jobs(
        Bucket=BUCKET, Tag="SegmentVideoBody", Size=100, EndCreationTime="2001-01-01T00:00:00+0800"
    )
    assert past.get("JobsDetail", []) == []
    window = client.ci_list_media_jobs(
        Bucket=BUCKET,
        Tag="SegmentVideoBody",
        Size=100,
        StartCreationTime="2001-01-01T00:00:00+0800",
        EndCreationTime="2099-01-01T00:00:00+0800",
    )
    assert len(window["JobsDetail"]) == 5
    queue = client.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody", QueueId="pnotaqueue", Size=100)
    assert queue.get("JobsDetail", []) == []


@pytest.mark.parametrize(
    "params",
    [
        {"Size": 101},
        {"Size": 0},
        {"States": "Done"},
        {"OrderByTime": "Sideways"},
        {"NextToken": "bogus"},
        {"StartCreationTime": "yesterday"},
        {"Tag": ""},
    ],
)
def test_list_refuses_invalid_queries(emu: Any, client: Any, params: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"Bucket": BUCKET, "Tag": "SegmentVideoBody", **params}
    with pytest.raises(CosServiceError) as info:
        client.ci_list_media_jobs(**kwargs)
    assert (info.value.get_status_code(), info.value.get_error_code()) == (400, "InvalidArgument")


def test_cancel_rules(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_job_timing(60, 60)
    waiting = submit(client, CallBack=receiver.url)["JobId"]
    assert client.ci_cancel_jobs(Bucket=BUCKET, JobID=waiting) == ""
    assert state_of(client, waiting) == "Cancel"
    wait_for(lambda: receiver.requests)
    assert b"<State>Cancel</State>" in receiver.requests[0]["body"]

    paused = submit(client)["JobId"]
    emu.pause_job(paused)
    client.ci_cancel_jobs(Bucket=BUCKET, JobID=paused)
    assert state_of(client, paused) == "Cancel"

    emu.set_job_timing(0, 60)
    running = submit(client)["JobId"]
    wait_for(lambda: state_of(client, running) == "Running")
    for job_id in (running, waiting):  # running, and already cancelled (finished)
        with pytest.raises(CosServiceError) as info:
            client.ci_cancel_jobs(Bucket=BUCKET, JobID=job_id)
        assert (info.value.get_status_code(), info.value.get_error_code()) == (400, "InvalidArgument")
    assert state_of(client, running) == "Running"
    with pytest.raises(CosServiceError) as info:
        client.ci_cancel_jobs(Bucket=BUCKET, JobID="a" + "0" * 32)
    assert info.value.get_status_code() == 404


@pytest.mark.parametrize("ended", ["Success", "Failed"])
def test_cancel_refuses_a_job_that_has_ended(emu: Any, client: Any, receiver: Receiver, ended: str) -> None:
    emu.set_job_timing(60, 60)
    job_id = submit(client, CallBack=receiver.url)["JobId"]
    emu.force_job_outcome(job_id, ended)
    before = describe(client, job_id)
    with pytest.raises(CosServiceError) as info:
        client.ci_cancel_jobs(Bucket=BUCKET, JobID=job_id)
    assert (info.value.get_status_code(), info.value.get_error_code()) == (400, "InvalidArgument")
    assert ended in info.value.get_error_msg()  # the message says what state the job is in
    assert describe(client, job_id) == before  # nothing changed: no Cancel, same EndTime
    wait_for(lambda: receiver.requests)
    time.sleep(0.1)
    assert len(receiver.requests) == 1  # the job's own end only, no second callback
    assert emu.stats.count("CancelJob", ok=False) == 1


# -- callbacks ------------------------------------------------------------------------------------------------
def test_xml_callback_on_success(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_job_timing(0, 0)
    job_id = submit(client, CallBack=receiver.url)["JobId"]
    wait_for(lambda: receiver.requests)
    req = receiver.requests[0]
    assert req["path"] == "/ci-callback" and req["content_type"] == "application/xml"
    root = ElementTree.fromstring(req["body"])
    assert root.tag == "Response" and root.findtext("EventName") == "TaskFinish"
    assert root.findtext("JobsDetail/JobId") == job_id
    assert root.findtext("JobsDetail/State") == "Success"
    assert root.findtext("JobsDetail/Operation/UserData") == "This is my data."
    assert root.findtext("JobsDetail/Operation/MediaResult/OutputFile/ObjectName") == "output/out.mp4"
    sent = wait_for(lambda: emu.callbacks_sent)
    assert sent[0]["url"] == receiver.url and sent[0]["status"] == 200 and sent[0]["format"] == "XML"
    assert sent[0]["attempt"] == 1


def test_json_callback_on_failure(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_job_timing(60, 60)
    job_id = submit(client, CallBack=receiver.url, CallBackFormat="JSON")["JobId"]
    emu.force_job_outcome(job_id, "Failed", code="VideoDecodeFailed", message="bad stream")
    wait_for(lambda: receiver.requests)
    req = receiver.requests[0]
    assert req["content_type"] == "application/json"
    doc = json.loads(req["body"])
    assert doc["EventName"] == "TaskFinish"
    detail = doc["JobsDetail"][0]
    assert (detail["JobId"], detail["State"], detail["Code"], detail["Message"]) == (
        job_id,
        "Failed",
        "VideoDecodeFailed",
        "bad stream",
    )


def test_callback_is_retried_after_a_server_error(emu: Any, client: Any) -> None:
    flaky = Receiver(statuses=[500])
    try:
        emu.set_job_timing(0, 0)
        submit(client, CallBack=flaky.url)
        wait_for(lambda: len(flaky.requests) >= 2)
        sent = wait_for(lambda: [c for c in emu.callbacks_sent if c["status"] == 200])
        attempts = [(c["attempt"], c["status"]) for c in emu.callbacks_sent]
        assert attempts == [(1, 500), (2, 200)]
        assert len(sent) == 1
    finally:
        flaky.close()


def test_unreachable_callback_is_recorded_as_failed_attempts(emu: Any, client: Any) -> None:
    dead = Receiver()
    url = dead.url
    dead.close()
    emu.set_job_timing(0, 0)
    submit(client, CallBack=url)
    wait_for(lambda: len(emu.callbacks_sent) >= 3)
    time.sleep(0.1)
    sent = emu.callbacks_sent
    assert [c["attempt"] for c in sent] == [1, 2, 3]
    assert all(c["status"] is None and c["error"] for c in sent)


def test_no_callback_when_disabled_and_tdmq_is_recorded_only(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_job_timing(0, 0)
    quiet = submit(client, CallBack="no")["JobId"]
    mq = {"MqRegion": "bj", "MqMode": "Queue", "MqName": "ci-events"}
    tdmq = submit(client, CallBack=receiver.url, CallBackType="TDMQ", CallBackMqConfig=mq)["JobId"]
    wait_for(lambda: state_of(client, quiet) == "Success" and state_of(client, tdmq) == "Success")
    sent = wait_for(lambda: emu.callbacks_sent)
    time.sleep(0.1)
    assert receiver.requests == []
    assert [(c["job_id"], c["type"], c["mq"]) for c in emu.callbacks_sent] == [(tdmq, "TDMQ", mq)]
    assert sent[0]["status"] is None


def test_callback_faults_drop_and_duplicate(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_job_timing(0, 0)
    emu.set_faults(FaultConfig(callback_duplicate_rate=1.0))
    dup = submit(client, CallBack=receiver.url)["JobId"]
    wait_for(lambda: len(receiver.requests) >= 2)
    assert all(dup.encode() in r["body"] for r in receiver.requests)
    emu.set_faults(FaultConfig(callback_drop_rate=1.0))
    dropped = submit(client, CallBack=receiver.url)["JobId"]
    wait_for(lambda: state_of(client, dropped) == "Success")
    wait_for(lambda: any(c["job_id"] == dropped for c in emu.callbacks_sent))
    time.sleep(0.1)
    assert len(receiver.requests) == 2
    assert [c["dropped"] for c in emu.callbacks_sent if c["job_id"] == dropped] == [True]


# -- persistence ----------------------------------------------------------------------------------------------
def test_jobs_survive_a_restart_and_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "emu"
    first = Emulator(data_dir=data_dir).start()
    try:
        first.put_object(BUCKET, "input/test.mp4", INPUT)
        first.set_job_timing(60, 60)
        job_id = submit(first.cos_client())["JobId"]
    finally:
        first.stop()
    assert (data_dir / "jobs.json").exists()
    second = Emulator(data_dir=data_dir).start()
    try:
        client = second.cos_client()
        assert state_of(client, job_id) == "Submitted"
        second.set_job_timing(0, 0)
        wait_for(lambda: state_of(client, job_id) == "Success")
        assert second.get_object(BUCKET, "output/out.mp4") is not None
    finally:
        second.stop()
