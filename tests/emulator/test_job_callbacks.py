"""Callback variants the emulator can deliver (as CI may): JSON under either content type, JobsDetail as a list or
one object, seeded random choice, and workflow-started jobs (TaskFinish with <Workflow>, then WorkflowFinish).
Bodies are parsed here with plain parsers (json, ElementTree), never the provider's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from airflow_provider_tencent_ci.emulator import CosError, Emulator
from tests.emulator.jobs_support import BUCKET, INPUT, Receiver, describe, job_request, list_ids, submit, wait_for


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.put_object(BUCKET, "input/test.mp4", INPUT, content_type="video/mp4")
    tencent_conn.set_job_timing(60, 60)
    return tencent_conn


@pytest.fixture
def client(emu: Any) -> Any:
    return emu.cos_client()


def finish_json_job(emu: Any, client: Any, receiver: Receiver) -> tuple[str, dict[str, Any]]:
    job_id = submit(client, CallBack=receiver.url, CallBackFormat="JSON")["JobId"]
    emu.force_job_outcome(job_id, "Success")
    wait_for(lambda: receiver.requests)
    return job_id, receiver.requests[0]


def test_default_json_callback_is_application_json_with_a_list(emu: Any, client: Any, receiver: Receiver) -> None:
    job_id, req = finish_json_job(emu, client, receiver)
    assert req["content_type"] == "application/json"
    doc = json.loads(req["body"])
    assert isinstance(doc["JobsDetail"], list) and doc["JobsDetail"][0]["JobId"] == job_id
    sent = wait_for(lambda: emu.callbacks_sent)
    assert (sent[0]["event"], sent[0]["content_type"], sent[0]["shape"]) == ("TaskFinish", "application/json", "list")


def test_json_body_under_an_xml_content_type(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_callback_variants(json_content_type="application/xml")
    job_id, req = finish_json_job(emu, client, receiver)
    assert req["content_type"] == "application/xml"
    doc = json.loads(req["body"])  # the body is JSON whatever the header says
    assert doc["EventName"] == "TaskFinish" and doc["JobsDetail"][0]["JobId"] == job_id


def test_jobs_detail_as_one_object(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_callback_variants(jobs_detail="object")
    job_id, req = finish_json_job(emu, client, receiver)
    detail = json.loads(req["body"])["JobsDetail"]
    assert isinstance(detail, dict)
    assert (detail["JobId"], detail["State"]) == (job_id, "Success")


def test_xml_callbacks_ignore_the_json_variants(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_callback_variants(json_content_type="application/xml", jobs_detail="object")
    job_id = submit(client, CallBack=receiver.url)["JobId"]
    emu.force_job_outcome(job_id, "Failed", code="E", message="m")
    wait_for(lambda: receiver.requests)
    req = receiver.requests[0]
    root = ElementTree.fromstring(req["body"])
    assert req["content_type"] == "application/xml" and root.findtext("JobsDetail/State") == "Failed"


def random_variants(emu: Any, client: Any, receiver: Receiver, seed: int, jobs: int) -> list[tuple[str, str]]:
    """(content type, JobsDetail shape) of ``jobs`` JSON callbacks, in the order the jobs ended."""
    emu.reset()
    receiver.requests.clear()
    emu.put_object(BUCKET, "input/test.mp4", INPUT)
    emu.set_job_timing(60, 60)
    emu.set_callback_variants(json_content_type="random", jobs_detail="random", seed=seed)
    ids = [submit(client, CallBack=receiver.url, CallBackFormat="JSON")["JobId"] for _ in range(jobs)]
    for job_id in ids:  # ended one by one: the variants are drawn in this order
        emu.force_job_outcome(job_id, "Success")
    wait_for(lambda: len(receiver.requests) == jobs)
    by_job: dict[str, tuple[str, str]] = {}
    for req in receiver.requests:
        detail = json.loads(req["body"])["JobsDetail"]
        one = detail if isinstance(detail, dict) else detail[0]
        by_job[one["JobId"]] = (req["content_type"], "object" if isinstance(detail, dict) else "list")
    return [by_job[job_id] for job_id in ids]


def test_random_mode_is_seeded_and_covers_every_variant(emu: Any, client: Any, receiver: Receiver) -> None:
    first = random_variants(emu, client, receiver, seed=3, jobs=10)
    again = random_variants(emu, client, receiver, seed=3, jobs=10)
    assert first == again  # same seed, same sequence
    assert {ct for ct, _ in first} == {"application/json", "application/xml"}
    assert {shape for _, shape in first} == {"list", "object"}


def test_invalid_variant_is_refused(emu: Any) -> None:
    with pytest.raises(ValueError, match="json_content_type"):
        emu.set_callback_variants(json_content_type="text/plain")
    with pytest.raises(ValueError, match="jobs_detail"):
        emu.set_callback_variants(jobs_detail="tuple")


def test_reset_restores_the_default_variants(emu: Any, client: Any, receiver: Receiver) -> None:
    emu.set_callback_variants(json_content_type="application/xml", jobs_detail="object")
    emu.reset()
    emu.put_object(BUCKET, "input/test.mp4", INPUT)
    emu.set_job_timing(60, 60)
    _, req = finish_json_job(emu, client, receiver)
    assert req["content_type"] == "application/json" and isinstance(json.loads(req["body"])["JobsDetail"], list)


# -- jobs started by a workflow -------------------------------------------------------------------------------
def bodies_by_event(receiver: Receiver, parse: Any) -> dict[str, Any]:
    out = {}
    for req in receiver.requests:
        doc = parse(req["body"])
        out[doc["EventName"] if isinstance(doc, dict) else doc.findtext("EventName")] = doc
    return out


def test_workflow_job_sends_task_finish_with_workflow_then_workflow_finish(
    emu: Any, client: Any, receiver: Receiver
) -> None:
    detail = emu.start_workflow_job(BUCKET, job_request(CallBack=receiver.url), workflow_name="matting-flow")
    job_id, workflow = detail["JobId"], detail["Workflow"]
    assert workflow["WorkflowName"] == "matting-flow" and workflow["RunId"] and workflow["WorkflowId"]
    assert describe(client, job_id)["Workflow"] == workflow  # the query shows the <Workflow> node too
    emu.force_job_outcome(job_id, "Success")
    wait_for(lambda: len(receiver.requests) == 2)
    assert {r["content_type"] for r in receiver.requests} == {"application/xml"}
    events = bodies_by_event(receiver, ElementTree.fromstring)
    task = events["TaskFinish"]
    assert task.findtext("JobsDetail/JobId") == job_id and task.findtext("JobsDetail/State") == "Success"
    assert task.findtext("JobsDetail/Workflow/WorkflowId") == workflow["WorkflowId"]
    assert task.findtext("JobsDetail/Workflow/RunId") == workflow["RunId"]
    finish = events["WorkflowFinish"]
    assert finish.find("JobsDetail") is None
    run = finish.find("WorkflowExecution")
    assert run is not None
    assert (run.findtext("RunId"), run.findtext("WorkflowId"), run.findtext("WorkflowName")) == (
        workflow["RunId"],
        workflow["WorkflowId"],
        "matting-flow",
    )
    assert (run.findtext("State"), run.findtext("Object"), run.findtext("BucketId")) == (
        "Success",
        "input/test.mp4",
        BUCKET,
    )
    assert run.findtext("CreateTime") == detail["CreationTime"]
    tasks = run.findall("Tasks")
    assert len(tasks) == 1
    assert (tasks[0].findtext("JobId"), tasks[0].findtext("State"), tasks[0].findtext("Type")) == (
        job_id,
        "Success",
        "SegmentVideoBody",
    )
    assert tasks[0].findtext("StartTime") != "-" and tasks[0].findtext("EndTime") != "-"
    sent = wait_for(lambda: len(emu.callbacks_sent) == 2 and emu.callbacks_sent)  # recorded once answered
    assert sorted(c["event"] for c in sent) == ["TaskFinish", "WorkflowFinish"]


@pytest.mark.parametrize("shape", ["list", "object"])
def test_workflow_finish_in_json(emu: Any, client: Any, receiver: Receiver, shape: str) -> None:
    emu.set_callback_variants(json_content_type="application/xml", jobs_detail=shape)
    job_id = emu.start_workflow_job(BUCKET, job_request(CallBack=receiver.url, CallBackFormat="JSON"))["JobId"]
    emu.force_job_outcome(job_id, "Failed", code="InternalError", message="decoder crash")
    wait_for(lambda: len(receiver.requests) == 2)
    events = bodies_by_event(receiver, json.loads)
    run = events["WorkflowFinish"]["WorkflowExecution"]
    tasks = run["Tasks"]
    task = tasks if shape == "object" else tasks[0]
    assert isinstance(tasks, dict if shape == "object" else list)
    assert (run["State"], task["JobId"], task["State"]) == ("Failed", job_id, "Failed")
    detail = events["TaskFinish"]["JobsDetail"]
    one = detail if shape == "object" else detail[0]
    assert one["Workflow"]["RunId"] == run["RunId"] and one["Code"] == "InternalError"


def test_workflow_jobs_are_listed_by_workflow_id(emu: Any, client: Any) -> None:
    plain = submit(client)["JobId"]
    flow = emu.start_workflow_job(BUCKET, job_request(), workflow_name="flow-a")
    other = emu.start_workflow_job(BUCKET, job_request(), workflow_name="flow-b")
    assert list_ids(emu, workflowId=flow["Workflow"]["WorkflowId"]) == [flow["JobId"]]
    assert list_ids(emu, workflowId=other["Workflow"]["WorkflowId"]) == [other["JobId"]]
    assert list_ids(emu, workflowId="wnotaworkflow") == []
    assert set(list_ids(emu)) == {plain, flow["JobId"], other["JobId"]}


def test_workflow_job_request_is_checked_like_a_submit(emu: Any) -> None:
    with pytest.raises(CosError) as info:
        emu.start_workflow_job(BUCKET, job_request(Input={"Object": "input/none.mp4"}))
    assert (info.value.status, info.value.code) == (400, "InvalidArgument")
    assert emu.jobs == []


def test_no_callback_when_the_workflow_callback_is_off(emu: Any, client: Any, receiver: Receiver) -> None:
    quiet = emu.start_workflow_job(BUCKET, job_request(CallBack="no"))["JobId"]
    emu.force_job_outcome(quiet, "Success")
    loud = emu.start_workflow_job(BUCKET, job_request(CallBack=receiver.url))["JobId"]
    emu.force_job_outcome(loud, "Success")  # ended after the quiet one: its callbacks mark the end of the wait
    wait_for(lambda: len([c for c in emu.callbacks_sent if c["status"] == 200]) == 2)
    assert describe(client, quiet)["State"] == "Success"
    assert {c["job_id"] for c in emu.callbacks_sent} == {loud}
    assert len(receiver.requests) == 2


def test_workflow_job_survives_a_restart(tmp_path: Path) -> None:
    first = Emulator(data_dir=tmp_path).start()
    try:
        first.put_object(BUCKET, "input/test.mp4", INPUT)
        first.set_job_timing(60, 60)
        started = first.start_workflow_job(BUCKET, job_request(), workflow_name="kept")
    finally:
        first.stop()
    second = Emulator(data_dir=tmp_path).start()
    try:
        again = describe(second.cos_client(), started["JobId"])
        assert again["Workflow"] == started["Workflow"] and again["State"] == "Submitted"
        assert list_ids(second, workflowId=started["Workflow"]["WorkflowId"]) == [started["JobId"]]
    finally:
        second.stop()
