"""``GET /jobs`` filters as documented (intl 1045/73114): queueType, queueId, inputObject (exact), states, creation
times, size, nextToken, orderByTime, workflowId. Requests are signed with the SDK's signer and sent over plain HTTP
(the SDK's ``ci_list_media_jobs`` cannot send queueType or inputObject); replies are parsed with ElementTree."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import pytest

from tests.emulator.jobs_support import BUCKET, INPUT, ci_get, list_ids, submit

QUEUE_TYPES = ("Transcoding", "Speeching", "PicProcess", "AIProcess", "SpeedTranscoding")


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.put_object(BUCKET, "input/test.mp4", INPUT, content_type="video/mp4")
    tencent_conn.put_object(BUCKET, "input/test.mp4.bak", INPUT, content_type="video/mp4")
    tencent_conn.set_job_timing(60, 60)
    return tencent_conn


@pytest.fixture
def client(emu: Any) -> Any:
    return emu.cos_client()


def refused(emu: Any, **params: str) -> str:
    """The error code of a refused list (asserting it is a 400)."""
    resp = ci_get(emu, "/jobs", {"tag": "SegmentVideoBody", **params})
    assert resp.status_code == 400, resp.text
    return ElementTree.fromstring(resp.content).findtext("Code") or ""


def test_queue_type_ai_process_lists_segment_video_body_jobs(emu: Any, client: Any) -> None:
    ids = [submit(client)["JobId"] for _ in range(3)]
    assert list_ids(emu, queueType="AIProcess", orderByTime="Asc") == ids
    assert list_ids(emu, orderByTime="Asc") == ids  # without queueType (optional on the 2025 page): as before
    for other in QUEUE_TYPES:
        if other != "AIProcess":
            assert list_ids(emu, queueType=other) == [], other
    assert emu.stats.count("ListJobs", ok=True) == 6


@pytest.mark.parametrize("value", ["AiProcess", "aiprocess", "Bogus"])
def test_unknown_queue_type_is_refused(emu: Any, client: Any, value: str) -> None:
    submit(client)
    assert refused(emu, queueType=value) == "InvalidArgument"


def test_queue_id_filter(emu: Any, client: Any) -> None:
    job = submit(client)
    assert list_ids(emu, queueId=job["QueueId"]) == [job["JobId"]]
    assert list_ids(emu, queueId=job["QueueId"], queueType="AIProcess") == [job["JobId"]]
    assert list_ids(emu, queueId="p" + "0" * 32) == []


def test_input_object_is_an_exact_match(emu: Any, client: Any) -> None:
    exact = submit(client)["JobId"]
    longer = submit(client, Input={"Object": "input/test.mp4.bak"})["JobId"]
    assert list_ids(emu, queueType="AIProcess", inputObject="input/test.mp4") == [exact]
    assert list_ids(emu, inputObject="input/test.mp4.bak") == [longer]
    assert list_ids(emu, inputObject="input/test") == []  # not a prefix match
    assert list_ids(emu, inputObject="INPUT/TEST.MP4") == []  # keys are case-sensitive


def test_states_filter_with_queue_type(emu: Any, client: Any) -> None:
    ids = [submit(client)["JobId"] for _ in range(4)]
    emu.force_job_outcome(ids[0], "Failed")
    emu.force_job_outcome(ids[1], "Success")
    emu.force_job_outcome(ids[2], "Running")
    assert list_ids(emu, queueType="AIProcess", states="Failed") == [ids[0]]
    assert list_ids(emu, queueType="AIProcess", states="Submitted,Running", orderByTime="Asc") == ids[2:]
    assert len(list_ids(emu, queueType="AIProcess", states="All")) == 4
    assert refused(emu, queueType="AIProcess", states="Finished") == "InvalidArgument"


def test_creation_time_window(emu: Any, client: Any) -> None:
    job = submit(client)
    created = job["CreationTime"]  # e.g. 2026-01-01T10:00:00+0800: bounds are inclusive to the second
    assert list_ids(emu, startCreationTime=created, endCreationTime=created) == [job["JobId"]]
    assert list_ids(emu, queueType="AIProcess", startCreationTime="2099-01-01T00:00:00+0800") == []
    assert list_ids(emu, queueType="AIProcess", endCreationTime="2001-01-01T00:00:00+0800") == []
    assert refused(emu, endCreationTime="2026-13-01") == "InvalidArgument"


def test_size_next_token_and_order_with_queue_type(emu: Any, client: Any) -> None:
    ids = [submit(client)["JobId"] for _ in range(3)]
    first = ci_get(emu, "/jobs", {"tag": "SegmentVideoBody", "queueType": "AIProcess", "size": "2"})
    root = ElementTree.fromstring(first.content)
    assert [e.findtext("JobId") for e in root.findall("JobsDetail")] == ids[::-1][:2]
    token = root.findtext("NextToken") or ""
    assert token
    rest = list_ids(emu, queueType="AIProcess", size="2", nextToken=token)
    assert rest == ids[:1]
    assert refused(emu, size="101") == "InvalidArgument"
    assert refused(emu, orderByTime="Newest") == "InvalidArgument"


def test_tag_filter(emu: Any, client: Any) -> None:
    submit(client)
    assert list_ids(emu, tag="Transcode") == []
    assert refused(emu, tag="") == "InvalidArgument"
