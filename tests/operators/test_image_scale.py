"""Large image batches (issue 16 item 2): a streamed source listing, one output listing per rerun instead of a
HEAD per item, and the manifest + summary XCom above ``ITEM_DOCS_MAX_ITEMS``. Counts, not times."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_tencent_ci.emulator.faults import FaultConfig, OperationFaults
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.operators._batch import SourceItem, run_items
from airflow_provider_tencent_ci.operators._manifest import (
    ITEM_DOCS_MAX_ITEMS,
    PLANNED_BATCH_MAX_ITEMS,
    SUMMARY_MAX_BYTES,
    BatchCollector,
    manifest_key,
    recorded_outputs,
    task_manifests,
)
from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator
from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator
from tests.conftest import run_dag
from tests.operators.image_support import BUCKET, START, paid, state, subject_png, xcom
from tests.operators.test_ci_image import _RecordingTI


class PagedPortraitMatting(PortraitMattingOperator):
    """The real operator with a small ListObjects page (MaxKeys), so a few hundred objects make several pages."""

    list_page_size = 120


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def _put_many(emu: Any, prefix: str, n: int) -> list[str]:
    png = subject_png(8)
    keys = [f"{prefix}img{i:05d}.png" for i in range(n)]
    for key in keys:
        emu.put_object(BUCKET, key, png, content_type="image/png")
    return keys


def _record_order(emu: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The emulator's requests by operation, in the order the emulator answered them."""
    order: list[str] = []
    record = emu.stats.record

    def recording(operation: str, *args: Any, **kwargs: Any) -> None:
        order.append(operation)
        record(operation, *args, **kwargs)

    monkeypatch.setattr(emu.stats, "record", recording)
    return order


def _arrival_order(emu: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """(operation, listing prefix) of every request, in the order the emulator received them."""
    order: list[tuple[str, str | None]] = []
    log_query = emu.stats.log_query

    def recording(operation: str, bucket: str | None, query: dict[str, str]) -> None:
        order.append((operation, query.get("prefix")))
        log_query(operation, bucket, query)

    monkeypatch.setattr(emu.stats, "log_query", recording)
    return order


def test_thresholds_are_ordered() -> None:
    # A batch that returns per-item documents may still be streamed; never the other way round.
    assert PLANNED_BATCH_MAX_ITEMS < ITEM_DOCS_MAX_ITEMS


def test_the_first_paid_call_comes_before_the_last_listing_page(
    tencent_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "stream/", 250)  # pages of 120: 120 + 120 + 10
    emu.stats.reset()
    order = _record_order(emu, monkeypatch)
    with _dag("scale_stream") as dag:
        PagedPortraitMatting(
            task_id="process",
            bucket=BUCKET,
            source_prefix="stream/",
            output_key="stream-out/{stem}.png",
            max_concurrency=4,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"

    # 3 source pages + 1 output page (the rerun check of a batch over PLANNED_BATCH_MAX_ITEMS) + this task's earlier
    # manifests (none yet), no HEAD per item.
    assert order.count("ListObjects") == 5
    assert order.count("HeadObject") == 0
    assert order.count("ImageProcess") == 250
    first_paid = order.index("ImageProcess")
    last_page = len(order) - 1 - order[::-1].index("ListObjects")
    assert first_paid < last_page, "work must start while the listing is still being fetched"
    assert order[:last_page].count("ImageProcess") >= 200
    docs = xcom(dr, "process")  # 250 <= ITEM_DOCS_MAX_ITEMS: the per-item documents, in source order
    assert [d["source_key"] for d in docs] == keys
    assert {d["status"] for d in docs} == {"processed"}


def test_a_large_overwrite_batch_learns_missing_outputs_from_one_listing(tencent_conn: Any) -> None:
    """if_exists="overwrite" still checks an existing output's owner, but outputs that do not exist cost no HEAD."""
    emu = tencent_conn
    n = 250
    _put_many(emu, "fresh/", n)
    with _dag("scale_overwrite") as dag:
        PortraitMattingOperator(
            task_id="process",
            bucket=BUCKET,
            source_prefix="fresh/",
            output_key="fresh-out/{stem}.png",
            if_exists="overwrite",
            max_concurrency=8,
        )
    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert paid(emu)["ImageProcess"] == n
    assert emu.stats.count(operation="HeadObject") == 0  # was one HEAD per output
    assert emu.stats.count(operation="ListObjects") == 3  # the sources, the outputs, this task's manifests: once each


def test_a_rerun_lists_the_outputs_once_and_redoes_only_a_changed_source(tencent_conn: Any) -> None:
    emu = tencent_conn
    n = 250
    keys = _put_many(emu, "rerun/", n)
    with _dag("scale_rerun") as dag:
        PortraitMattingOperator(
            task_id="process",
            bucket=BUCKET,
            source_prefix="rerun/",
            output_key="rerun-out/{{ ds }}/{stem}.png",
            max_concurrency=8,
        )
    run_dag(dag, logical_date=START)
    assert paid(emu)["ImageProcess"] == n
    outputs = [k for k in emu.list_keys(BUCKET, "rerun-out/2024-01-01/") if "/_manifests/" not in k]
    assert len(outputs) == n
    # Time passes (COS dates have second precision): the sources date from 2 minutes ago, their outputs from 1.
    for key, age in [*((k, 2) for k in keys), *((k, 1) for k in outputs)]:
        record = emu.store.get(BUCKET, key)
        record.last_modified = record.last_modified - timedelta(minutes=age)

    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    # sources + outputs + this task's manifests, and the newest manifest read once
    assert emu.stats.count(operation="ListObjects") == (n // 1000 + 1) + (n // 1000 + 1) + 1
    assert emu.stats.count(operation="GetObject") == 1
    # A listing carries no x-cos-meta-source, but the task's last manifest records each output it made with its
    # ETag and source: an output listed with that ETag is this item's own, skipped without a HEAD for its owner.
    assert emu.stats.count(operation="HeadObject") == 0
    assert sum(paid(emu).values()) == 0 and emu.stats.count(operation="CopyObject") == 0
    docs = xcom(dr, "process")
    assert {d["status"] for d in docs} == {"skipped"}
    assert all(d["etag"] and d["size"] for d in docs)

    # A source put again after its output was made is redone, and only that one.
    emu.put_object(BUCKET, keys[17], subject_png(8, colour=(30, 30, 200)), content_type="image/png")
    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    assert [d["source_key"] for d in xcom(dr, "process") if d["status"] == "processed"] == [keys[17]]
    assert paid(emu)["ImageProcess"] == 1
    assert emu.stats.count(operation="HeadObject") == 0  # every existing output is vouched for by the manifest
    assert emu.stats.count(operation="CopyObject") == 1  # the one output made again is tagged with its source


def test_a_large_batch_returns_a_small_summary_and_writes_the_manifest(tencent_conn: Any) -> None:
    emu = tencent_conn
    n = 2000
    keys = _put_many(emu, "big/", n)
    emu.set_faults(FaultConfig(fixed_latency=0.0))  # benchmark mode: placeholder outputs, no pixel work
    try:
        with _dag("scale_manifest") as dag:
            PortraitMattingOperator(
                task_id="process",
                bucket=BUCKET,
                source_prefix="big/",
                output_key="big-out/{{ ds }}/{stem}.png",
                max_concurrency=16,
            )
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "process") == "success"

    summary = xcom(dr, "process")
    assert len(json.dumps(summary)) <= 64 * 1024
    assert (summary["processed"], summary["skipped"], summary["failed"], summary["total"]) == (n, 0, 0, n)
    expected_key = manifest_key("big-out/2024-01-01", "scale_manifest", "process", dr.run_id, -1)
    assert expected_key == f"big-out/2024-01-01/_manifests/scale_manifest/process/{dr.run_id}.jsonl"
    assert summary["manifest_bucket"] == BUCKET and summary["manifest_key"] == expected_key
    assert summary["manifest"] == f"cos://{BUCKET}/{expected_key}"
    assert xcom(dr, "process", key="batch_summary")["manifest"] == summary["manifest"]

    lines = emu.get_object(BUCKET, expected_key).data.decode().splitlines()
    assert len(lines) == n
    docs = [json.loads(line) for line in lines]
    assert sorted(d["source_key"] for d in docs) == keys
    assert {d["status"] for d in docs} == {"processed"}
    outputs = set(emu.list_keys(BUCKET, "big-out/2024-01-01/"))
    assert all(d["output_key"] in outputs and d["etag"] and d["request_id"] for d in docs)
    assert len(outputs) == n + 1  # the outputs and the manifest
    link = xcom(dr, "process", key="_link_COSObjectLink")  # the output folder, in the emulator's object view
    assert link.startswith(f"{emu.console_base_url}/objects/{BUCKET}/") and link.endswith(
        "?prefix=big-out%2F2024-01-01%2F"
    )
    assert paid(emu)["ImageProcess"] == n

    # The manifest lives under the output prefix but is never taken as a source or as an output of this batch.
    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    rerun = xcom(dr, "process")
    assert rerun["total"] == n and rerun["processed"] == 0
    assert emu.stats.count(operation="HeadObject") == 0 and sum(paid(emu).values()) == 0  # the manifest vouches


def test_the_summary_names_the_first_failures_within_its_size_bound() -> None:
    collector = BatchCollector()
    try:
        for i in range(ITEM_DOCS_MAX_ITEMS + 50):
            status = "failed" if i % 2 else "processed"
            collector.add(i, {"source": f"cos://b/{'x' * 900}/{i}", "status": status, "error": "e" * 5000})
        assert collector.item_docs() is None  # too many for XCom
        summary = collector.summary(None)
        assert summary["failed"] == (ITEM_DOCS_MAX_ITEMS + 50) // 2
        assert 1 <= len(summary["failures"]) <= 10
        assert all(len(f["error"]) <= 500 for f in summary["failures"])
        assert len(json.dumps(summary)) <= SUMMARY_MAX_BYTES
        assert len(collector.lines().read().splitlines()) == ITEM_DOCS_MAX_ITEMS + 50
    finally:
        collector.close()


@pytest.mark.parametrize(("mode", "paid_op"), [("download", "CIProcess"), ("cloud", "ImageProcess")])
def test_outputs_are_headed_only_when_they_exist(tencent_conn: Any, mode: str, paid_op: str) -> None:
    """Every COS output carries x-cos-meta-source (download mode writes it with the object, cloud mode tags what CI
    wrote), which a listing does not carry: a large batch's first run HEADs nothing (the listing says no output
    exists); its rerun HEADs only the existing outputs its last manifest does not vouch for (recorded with this
    source and the listed ETag), and an output recorded as another source's fails that item instead of being
    skipped."""
    emu = tencent_conn
    n = PLANNED_BATCH_MAX_ITEMS + 10
    keys = _put_many(emu, "own/", n)
    emu.set_faults(FaultConfig(fixed_latency=0.0))
    try:
        with _dag("scale_owner") as dag:
            PortraitMattingOperator(
                task_id="process",
                mode=mode,
                bucket=BUCKET,
                source_prefix="own/",
                output_key="own-out/{stem}.png",
                max_concurrency=8,
                continue_on_error=True,
            )
        emu.stats.reset()
        run_dag(dag, logical_date=START)
        assert emu.stats.count(operation="HeadObject") == 0
        assert paid(emu)[paid_op] == n
        owners = {emu.get_object(BUCKET, f"own-out/{k[4:-4]}.png").metadata.get("source") for k in keys[:5]}
        assert owners == {f"cos://{BUCKET}/{k}" for k in keys[:5]}
        for key in keys:
            record = emu.store.get(BUCKET, key)
            record.last_modified = record.last_modified - timedelta(minutes=2)
        stolen = "own-out/img00003.png"
        emu.put_object(BUCKET, stolen, b"another task's result", metadata={"source": f"cos://{BUCKET}/elsewhere.png"})
        emu.stats.reset()
        dr = run_dag(dag, logical_date=START)
        first_rerun_heads = emu.stats.count(operation="HeadObject")
        rerun_docs = [xcom(dr, "process")]  # read now: the next run of the same date replaces this one
        # Without this task's manifests (deleted by hand), nothing vouches for the outputs: each is HEADed.
        for key in emu.list_keys(BUCKET, "own-out/_manifests/"):
            emu.store.delete(BUCKET, key)
        emu.stats.reset()
        unvouched = run_dag(dag, logical_date=START)
        unvouched_heads = emu.stats.count(operation="HeadObject")
        rerun_docs.append(xcom(unvouched, "process"))
    finally:
        emu.set_faults(None)
    # The manifest of the first run vouches for every output but the replaced one (another ETag): one HEAD, which
    # finds the other source's tag.
    assert first_rerun_heads == 1
    assert unvouched_heads == n
    for docs in rerun_docs:
        failed = [d for d in docs if d["status"] == "failed"]
        assert [d["source"] for d in failed] == [f"cos://{BUCKET}/{keys[3]}"]
        assert "already holds the output of cos://" in failed[0]["error"]
        assert sum(d["status"] == "skipped" for d in docs) == n - 1
    assert sum(paid(emu).values()) == 0


def test_a_streamed_batch_fails_the_second_source_of_one_output(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "dup/", PLANNED_BATCH_MAX_ITEMS + 5)
    emu.put_object(BUCKET, "dup/img00007.jpg", subject_png(8, fmt="JPEG"), content_type="image/jpeg")
    with _dag("scale_duplicate") as dag:
        PortraitMattingOperator(
            task_id="process", bucket=BUCKET, source_prefix="dup/", output_key="dup-out/{stem}.png", retries=0
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "failed"
    failed = xcom(dr, "process", key="failed_items")
    assert len(failed) == 1 and failed[0]["error_code"] == "ParameterValidation"
    assert failed[0]["source"] in (f"cos://{BUCKET}/dup/img00007.jpg", f"cos://{BUCKET}/{keys[7]}")
    assert "two sources map to the same output" in failed[0]["error"]
    assert paid(emu)["ImageProcess"] == len(keys)  # every other source once; the duplicate never paid
    assert len([k for k in emu.list_keys(BUCKET, "dup-out/") if "/_manifests/" not in k]) == len(keys)


def test_a_large_batch_with_local_outputs_writes_its_manifest_beside_them(tencent_conn: Any, tmp_path: Any) -> None:
    emu = tencent_conn
    n = ITEM_DOCS_MAX_ITEMS + 1
    keys = _put_many(emu, "loc/", n)
    # A source whose output another source already claims: that item fails, the task fails, the manifest is written.
    emu.put_object(BUCKET, "loc/img00009.jpg", subject_png(8, fmt="JPEG"), content_type="image/jpeg")
    out = tmp_path / "out"
    emu.set_faults(FaultConfig(fixed_latency=0.0))
    try:
        with _dag("scale_local") as dag:
            PortraitMattingOperator(
                task_id="process",
                mode="download",
                bucket=BUCKET,
                source_prefix="loc/",
                output_path=str(out / "{stem}.png"),
                max_concurrency=8,
                retries=0,
            )
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "process") == "failed"
    summary = xcom(dr, "process", key="batch_summary")
    path = out / "_manifests" / "scale_local" / "process" / f"{dr.run_id}.jsonl"
    assert summary["manifest"] == str(path)
    assert (summary["processed"], summary["failed"], summary["total"]) == (n, 1, n + 1)
    assert [f["error_code"] for f in xcom(dr, "process", key="failed_items")] == ["ParameterValidation"]
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(d["source"] for d in docs) == sorted(f"cos://{BUCKET}/{k}" for k in [*keys, "loc/img00009.jpg"])
    assert sorted(d["status"] for d in docs).count("failed") == 1
    assert len(list(out.glob("*.png"))) == n


def test_run_items_pulls_a_lazy_listing_only_as_fast_as_items_finish() -> None:
    limit = 4
    lock = threading.Lock()
    seen = {"pulled": 0, "done": 0, "ahead": 0}

    def listing() -> Iterator[SourceItem]:
        for i in range(1000):
            with lock:
                seen["pulled"] += 1
                seen["ahead"] = max(seen["ahead"], seen["pulled"] - seen["done"])
            yield SourceItem("cos", bucket="b", key=f"k{i}")

    def work(item: SourceItem) -> dict[str, Any]:
        time.sleep(0.0005)
        with lock:
            seen["done"] += 1
        return {"source": item.key, "status": "processed"}

    results: dict[int, dict[str, Any]] = {}
    outcome = run_items(listing(), work, max_concurrency=limit, on_result=results.__setitem__)
    assert outcome.results == []  # the documents went to on_result
    assert sorted(results) == list(range(1000)) and results[999]["source"] == "k999"
    # Never more listed-but-unfinished items than the queue (2 x limit), the workers (limit) and the one in hand.
    assert seen["ahead"] <= 3 * limit + 1


def test_run_items_finishes_what_it_took_before_reporting_a_broken_listing() -> None:
    def listing() -> Iterator[SourceItem]:
        for i in range(10):
            yield SourceItem("cos", bucket="b", key=f"k{i}")
        raise TencentCloudError("listing page 2 failed", operation="ListObjects")

    results: dict[int, dict[str, Any]] = {}
    with pytest.raises(TencentCloudError, match="listing page 2 failed"):
        run_items(listing(), lambda item: {"status": "processed"}, max_concurrency=3, on_result=results.__setitem__)
    assert sorted(results) == list(range(10))


def test_a_streamed_batch_reports_its_prefix_as_the_lineage_input(tencent_conn: Any) -> None:
    emu = tencent_conn
    n = PLANNED_BATCH_MAX_ITEMS + 1
    _put_many(emu, "lin/", n)
    emu.set_faults(FaultConfig(fixed_latency=0.0))
    try:
        op = PortraitMattingOperator(task_id="lineage", bucket=BUCKET, source_prefix="lin/", output_key="lo/{stem}.png")
        ti = _RecordingTI()
        docs = op.execute({"ti": ti, "run_id": "manual__lineage"})  # type: ignore[arg-type]
    finally:
        emu.set_faults(None)
    assert len(docs) == n  # streamed, yet within ITEM_DOCS_MAX_ITEMS: the per-item documents
    datasets = op.lineage_datasets()
    assert datasets["inputs"] == [(f"cos://{BUCKET}", "lin/")]
    assert sorted(datasets["outputs"]) == sorted((f"cos://{BUCKET}", d["output_key"]) for d in docs)
    assert ti.pushed["batch_summary"]["processed"] == n


def test_a_large_source_keys_rerun_heads_each_source_once(tencent_conn: Any) -> None:
    """source_keys carry no listing date: the rerun HEADs each source once for its time (the output listing says
    the output exists), never once more for the same item."""
    emu = tencent_conn
    n = PLANNED_BATCH_MAX_ITEMS + 10
    keys = _put_many(emu, "named/", n)
    emu.set_faults(FaultConfig(fixed_latency=0.0))
    try:
        with _dag("scale_named") as dag:
            PortraitMattingOperator(
                task_id="process", bucket=BUCKET, source_keys=keys, output_key="named-out/{stem}.png", max_concurrency=8
            )
        run_dag(dag, logical_date=START)
        assert paid(emu)["ImageProcess"] == n
        emu.stats.reset()
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "process") == "success"
    assert sum(paid(emu).values()) == 0
    assert emu.stats.count(operation="ListObjects") == 2  # the outputs and this task's manifests, once each
    assert emu.stats.count(operation="HeadObject") == n  # one per source (was two: the time was not kept)


def test_a_rerun_with_two_outputs_per_item_heads_the_source_once(tencent_conn: Any) -> None:
    """BDA writes a portrait and a mask per source: both are checked, the source's time is HEADed once."""
    emu = tencent_conn
    keys = _put_many(emu, "pair/", 3)
    with _dag("scale_pair") as dag:
        SegmentPortraitPartsOperator(
            task_id="segment",
            parts=["Head"],
            bucket=BUCKET,
            source_keys=keys,
            portrait_output_key="pair-out/{stem}.png",
            mask_output_key="pair-out/{stem}.mask.png",
        )
    run_dag(dag, logical_date=START)
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 3
    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    assert [d["status"] for d in xcom(dr, "segment")] == ["skipped"] * 3
    assert sum(paid(emu).values()) == 0
    # Per item: the two outputs (their owner) and the source once (was twice: once per output).
    assert emu.stats.count(operation="HeadObject") == 3 * (2 + 1)


def test_a_rerun_pays_for_a_changed_source_before_the_output_listing_ends(
    tencent_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The output listing is read while the items run: an item waits only for the page that holds its output."""
    emu = tencent_conn
    keys = _put_many(emu, "early/", 250)  # pages of 120: 3 source pages, 3 output pages
    with _dag("scale_early") as dag:
        PagedPortraitMatting(
            task_id="process", bucket=BUCKET, source_prefix="early/", output_key="early-out/{stem}.png"
        )
    run_dag(dag, logical_date=START)
    assert paid(emu)["ImageProcess"] == 250
    for key, age in [*((k, 2) for k in keys), *((k, 1) for k in emu.list_keys(BUCKET, "early-out/"))]:
        record = emu.store.get(BUCKET, key)
        record.last_modified = record.last_modified - timedelta(minutes=age)
    emu.put_object(BUCKET, keys[0], subject_png(8, colour=(30, 30, 200)), content_type="image/png")
    # Slow listing pages: the changed first source must not wait for the output listing's last page.
    emu.set_faults(FaultConfig(per_operation={"ListObjects": OperationFaults(latency=0.5)}))
    emu.stats.reset()
    order = _arrival_order(emu, monkeypatch)
    try:
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "process") == "success"
    output_pages = [n for n, (op, prefix) in enumerate(order) if op == "ListObjects" and prefix == "early-out/"]
    paid_calls = [n for n, (op, _) in enumerate(order) if op == "ImageProcess"]
    assert len(output_pages) == 3 and len(paid_calls) == 1
    assert output_pages[0] < paid_calls[0] < output_pages[-1], order  # was: after the last output page
    assert [d["source_key"] for d in xcom(dr, "process") if d["status"] == "processed"] == [keys[0]]


def test_a_failed_output_listing_falls_back_to_a_head_per_output(tencent_conn: Any) -> None:
    """The output listing only saves requests: when it fails, each output is HEADed as in a small batch."""
    emu = tencent_conn
    n = PLANNED_BATCH_MAX_ITEMS + 5
    keys = _put_many(emu, "nolist/", n)
    emu.set_faults(FaultConfig(per_operation={"ListObjects": OperationFaults(error_rate=1.0, errors=("5xx",))}))
    emu.stats.reset()
    try:
        with _dag("scale_nolist") as dag:
            PortraitMattingOperator(
                task_id="process", bucket=BUCKET, source_keys=keys, output_key="nolist-out/{stem}.png"
            )
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "process") == "success"
    assert emu.stats.count(operation="ListObjects", ok=True) == 0 and emu.stats.count(operation="ListObjects") >= 1
    assert emu.stats.count(operation="HeadObject") == n
    assert paid(emu)["ImageProcess"] == n


def test_a_rerun_reads_only_its_own_map_indexs_manifests() -> None:
    prefix, matches = task_manifests("out/day", "dag", "task", 3)
    assert prefix == "out/day/_manifests/dag/task/"
    assert matches(manifest_key("out/day", "dag", "task", "run-1", 3))
    assert not matches(manifest_key("out/day", "dag", "task", "run-1", 13))  # a sibling mapped instance
    assert not matches(manifest_key("out/day", "dag", "task", "run-1", None))
    assert not matches(manifest_key("out/day", "dag", "task2", "run-1", 3))
    _, unmapped = task_manifests("out/day", "dag", "task", -1)
    assert unmapped(manifest_key("out/day", "dag", "task", "run-1", -1))
    assert not unmapped(manifest_key("out/day", "dag", "task", "run-1", 0))


def test_a_manifest_records_each_output_with_its_etag_and_source() -> None:
    lines = [
        json.dumps(d).encode()
        for d in (
            {
                "source": "cos://b/a.png",
                "status": "processed",
                "output_bucket": "b",
                "output_key": "o/a.png",
                "etag": '"e1"',
            },
            {
                "source": "cos://b/c.png",
                "status": "skipped",
                "output_bucket": "b",
                "output_key": "o/c.png",
                "etag": "e3",
            },
            {
                "source": "cos://b/d.png",
                "status": "failed",
                "output_bucket": "b",
                "output_key": "o/d.png",
                "etag": "e4",
            },
            {
                "source": "cos://b/p.png",
                "status": "processed",
                "source_bucket": "b",
                "source_key": "p.png",
                "portrait_bucket": "b",
                "portrait_key": "o/p-portrait.png",
                "portrait_etag": "e5",
                "mask_bucket": "b",
                "mask_key": "o/p-mask.png",
                "mask_etag": None,
            },
        )
    ] + [b"not json", b"[1, 2]"]
    assert recorded_outputs(lines) == {
        ("b", "o/a.png"): ("e1", "cos://b/a.png"),
        ("b", "o/c.png"): ("e3", "cos://b/c.png"),
        ("b", "o/p-portrait.png"): ("e5", "cos://b/p.png"),
    }
