"""CIHook success paths, signed by the real SDK and verified by the emulator over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.hooks.ci import CIHook, JobsPage, JobsQuery

from .conftest import BUCKET

SVB_REQUEST = {
    "Tag": "SegmentVideoBody",
    "Input": {"Object": "in/video.mp4"},
    "Operation": {
        "SegmentVideoBody": {"Mode": "Mask"},
        "Output": {"Region": "ap-guangzhou", "Bucket": "examplebucket-1250000000", "Object": "out/video.mp4"},
    },
}


@pytest.fixture
def hook(emu: Any) -> CIHook:
    return CIHook()


def test_hook_resolves_nothing_in_init(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    hook = CIHook(tencentcloud_conn_id="no_such_conn")  # would raise if the connection were fetched here
    assert hook._config is None


def test_objects_round_trip(hook: CIHook, emu: Any, tmp_path: Any) -> None:
    put = hook.put_object(BUCKET, "docs/a.txt", b"hello", content_type="text/plain", metadata={"owner": "me"})
    assert put["ETag"] and put["RequestId"]
    head = hook.head_object(BUCKET, "docs/a.txt")
    assert head is not None
    assert head["Content-Length"] == 5
    assert head["Content-Type"] == "text/plain"
    assert head["x-cos-meta-owner"] == "me"
    assert head["Last-Modified"].year >= 2024
    assert hook.object_exists(BUCKET, "docs/a.txt")
    assert hook.head_object(BUCKET, "docs/missing.txt") is None
    assert not hook.object_exists(BUCKET, "docs/missing.txt")
    assert hook.get_object_bytes(BUCKET, "docs/a.txt") == b"hello"

    copied = hook.copy_object(BUCKET, "docs/a.txt", "examplebucket-1250000000", "docs/b.txt")
    assert copied["ETag"] == put["ETag"]
    target = tmp_path / "b.txt"
    assert hook.download_file(BUCKET, "docs/b.txt", target) == 5
    assert target.read_bytes() == b"hello"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]  # no temp file left behind

    src = tmp_path / "up.bin"
    src.write_bytes(b"x" * 3000)
    hook.upload_file(BUCKET, "docs/up.bin", src)
    assert emu.get_object(BUCKET, "docs/up.bin").data == b"x" * 3000

    hook.delete_object(BUCKET, "docs/b.txt")
    assert emu.get_object(BUCKET, "docs/b.txt") is None
    for op in ("PutObject", "HeadObject", "GetObject", "CopyObject", "DeleteObject"):
        assert emu.stats.count(operation=op, ok=True) >= 1, op


def test_list_objects_reads_every_page(hook: CIHook, emu: Any) -> None:
    for i in range(5):
        emu.put_object(BUCKET, f"pages/{i}.txt", b"%d" % i)
    emu.put_object(BUCKET, "other/x.txt", b"x")
    items = list(hook.list_objects(BUCKET, prefix="pages/", max_keys=2))
    assert [i["Key"] for i in items] == [f"pages/{i}.txt" for i in range(5)]
    assert all(isinstance(i["Size"], int) and i["Size"] == 1 for i in items)
    assert all(i["LastModified"] is not None for i in items)
    assert emu.stats.count(operation="ListObjects") == 3  # 2 + 2 + 1


def test_ci_process_streams_the_result(hook: CIHook, emu: Any, png_bytes: bytes) -> None:
    emu.put_object(BUCKET, "img/in.png", png_bytes, content_type="image/png")
    with hook.ci_process(BUCKET, "img/in.png", "AIPortraitMatting", {"center-layout": 1}) as resp:
        assert resp.content_type == "image/png"
        assert resp.request_id
        body = b"".join(resp.iter_chunks(chunk_size=64))
    assert body.startswith(b"\x89PNG")
    assert emu.stats.count(operation="CIProcess", ok=True) == 1


def test_put_object_with_pic_operations_normalises_one_result(
    hook: CIHook, emu: Any, png_bytes: bytes, tmp_path: Any
) -> None:
    ops = {"is_pic_info": 1, "rules": [{"fileid": "/out/one.png", "rule": "ci-process=AIPortraitMatting"}]}
    result = hook.put_object_with_pic_operations(BUCKET, "img/up.png", png_bytes, ops)
    assert isinstance(result["ProcessResults"], list) and len(result["ProcessResults"]) == 1
    obj = result["ProcessResults"][0]
    assert obj["Key"] == "out/one.png" and obj["ETag"] and isinstance(obj["Size"], int)
    assert result["OriginalInfo"]["Key"] == "img/up.png"
    assert result["RequestId"]
    assert emu.get_object(BUCKET, "out/one.png") is not None
    # A local path works as well.
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes)
    again = hook.put_object_with_pic_operations(BUCKET, "img/up2.png", str(path), ops)
    assert len(again["ProcessResults"]) == 1
    assert emu.stats.count(operation="PicOperationsUpload", ok=True) == 2


def test_image_process_returns_every_result(hook: CIHook, emu: Any, png_bytes: bytes) -> None:
    emu.put_object(BUCKET, "img/src.png", png_bytes, content_type="image/png")
    ops = {
        "rules": [
            {"fileid": "/out/goods.png", "rule": "ci-process=GoodsMatting"},
            {"fileid": "/out/portrait.png", "rule": "ci-process=AIPortraitMatting&center-layout=1"},
        ]
    }
    result = hook.image_process(BUCKET, "img/src.png", ops)
    assert [o["Key"] for o in result["ProcessResults"]] == ["out/goods.png", "out/portrait.png"]
    assert emu.stats.count(operation="ImageProcess", ok=True) == 1


def test_jobs_submit_query_list_cancel(hook: CIHook, emu: Any) -> None:
    emu.set_job_timing(30, 30)  # stays Submitted: cancellable
    emu.put_object(BUCKET, "in/video.mp4", b"\x00" * 64)
    job = hook.submit_job(BUCKET, SVB_REQUEST)
    assert job["JobId"] and job["State"] == "Submitted" and job["Tag"] == "SegmentVideoBody"
    second = hook.submit_job(BUCKET, SVB_REQUEST)

    query = hook.get_jobs(BUCKET, [job["JobId"], second["JobId"], "no-such-job"])
    assert isinstance(query, JobsQuery)
    assert sorted(j["JobId"] for j in query.jobs) == sorted([job["JobId"], second["JobId"]])
    assert query.missing == ["no-such-job"]
    assert emu.stats.count(operation="DescribeJobs") == 1  # one request for three ids

    single = hook.get_jobs(BUCKET, job["JobId"])
    assert isinstance(single.jobs, list) and len(single.jobs) == 1 and single.missing == []

    page = hook.list_jobs(BUCKET, "SegmentVideoBody", states=["Submitted"], size=1)
    assert isinstance(page, JobsPage) and len(page.jobs) == 1 and page.next_token
    rest = hook.list_jobs(BUCKET, "SegmentVideoBody", states="Submitted", size=10, next_token=page.next_token)
    assert len(rest.jobs) == 1
    assert hook.list_jobs(BUCKET, "SegmentVideoBody", states=["Success"]).jobs == []

    hook.cancel_job(BUCKET, job["JobId"])
    assert hook.get_jobs(BUCKET, job["JobId"]).jobs[0]["State"] == "Cancel"


def test_get_jobs_batches_large_queries(emu: Any) -> None:
    hook = CIHook(job_query_batch_size=2)
    result = hook.get_jobs(BUCKET, ["a1", "a2", "a3", "a4", "a5"])
    assert result.jobs == [] and result.missing == ["a1", "a2", "a3", "a4", "a5"]
    assert emu.stats.count(operation="DescribeJobs") == 3


def test_async_job_calls_inside_an_event_loop(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    emu.put_object(BUCKET, "in/video.mp4", b"\x00" * 64)
    job = CIHook().submit_job(BUCKET, SVB_REQUEST)

    async def scenario() -> tuple[JobsQuery, JobsPage, JobsQuery]:
        hook = CIHook()  # fresh hook: connection and credentials resolved inside the loop
        try:
            query = await hook.aget_jobs(BUCKET, [job["JobId"], "ghost"])
            page = await hook.alist_jobs(BUCKET, "SegmentVideoBody", states=["Submitted", "Running"])
            await hook.acancel_job(BUCKET, job["JobId"])
            after = await hook.aget_jobs(BUCKET, job["JobId"])
            # Same client reused within one loop.
            assert len(hook._async_clients) == 1
        finally:
            await hook.aclose()
        return query, page, after

    query, page, after = asyncio.run(scenario())
    assert [j["JobId"] for j in query.jobs] == [job["JobId"]] and query.missing == ["ghost"]
    assert isinstance(query.jobs[0]["Input"], dict)
    assert [j["JobId"] for j in page.jobs] == [job["JobId"]]
    assert after.jobs[0]["State"] == "Cancel"
    assert emu.stats.count(operation="DescribeJobs", ok=True) == 2
    assert emu.stats.count(operation="ListJobs", ok=True) == 1
    assert emu.stats.count(operation="CancelJob", ok=True) == 1


def test_bad_input_fails_locally_before_any_request(hook: CIHook, emu: Any) -> None:
    with pytest.raises(ParameterValidationError, match="job_ids"):
        hook.get_jobs(BUCKET, [])
    for bad_id in ("a1,a2", "a1/x", "a1?x", "a" * 65):  # the one job-id rule (jobs.ids.is_job_id)
        with pytest.raises(ParameterValidationError, match=r"job_ids.*A-Z a-z 0-9 _ -"):
            hook.get_jobs(BUCKET, bad_id)
    with pytest.raises(ParameterValidationError, match="size"):
        hook.list_jobs(BUCKET, "SegmentVideoBody", size=101)
    with pytest.raises(ParameterValidationError, match="order_by_time"):
        hook.list_jobs(BUCKET, "SegmentVideoBody", order_by_time="Sideways")
    with pytest.raises(ParameterValidationError, match="key"):
        hook.put_object(BUCKET, "", b"x")
    with pytest.raises(ParameterValidationError, match="request"):
        hook.submit_job(BUCKET, {})
    assert emu.stats.count() == 0


def test_bucket_name_appends_appid(hook: CIHook) -> None:
    assert hook.bucket_name("examplebucket") == "examplebucket-1250000000"
    assert hook.bucket_name("examplebucket-1250000000") == "examplebucket-1250000000"
