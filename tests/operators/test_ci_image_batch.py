"""Many images in one task: the batch engine, failures, reruns that pay nothing twice, dynamic task mapping."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from airflow_provider_tencent_ci.emulator.faults import FaultConfig, OperationFaults
from airflow_provider_tencent_ci.exceptions import TencentCloudThrottlingError
from airflow_provider_tencent_ci.operators._batch import SourceItem, run_items
from airflow_provider_tencent_ci.operators.ci_image import (
    FaceBeautyOperator,
    GoodsMattingOperator,
    PortraitMattingOperator,
)
from tests.conftest import run_dag
from tests.operators.image_support import (
    BUCKET,
    START,
    alpha_is_varied,
    open_image,
    paid,
    state,
    subject_png,
    xcom,
)


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    return DAG(dag_id, schedule=kwargs.pop("schedule", None), start_date=START, catchup=False, **kwargs)


def _put_many(emu: Any, prefix: str, n: int) -> list[str]:
    png = subject_png()
    keys = [f"{prefix}img{i:03d}.png" for i in range(n)]
    for key in keys:
        emu.put_object(BUCKET, key, png, content_type="image/png")
    return keys


@pytest.fixture
def fast_retry_conn(tencent_conn: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator connection with millisecond retry delays (tests must not sleep on backoff)."""
    name, value = tencent_conn.airflow_conn_env("tencentcloud_default")
    conn = json.loads(value)
    conn["extra"].update(retry_base_delay=0.01, retry_max_delay=0.05, max_attempts=6)
    monkeypatch.setenv(name, json.dumps(conn))
    return tencent_conn


# -- the engine on its own ----------------------------------------------------------------------------------------
def test_run_items_never_exceeds_the_limit_and_keeps_order() -> None:
    lock = threading.Lock()
    live = {"now": 0, "peak": 0}

    def work(item: SourceItem) -> dict[str, Any]:
        with lock:
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
        time.sleep(0.002)
        with lock:
            live["now"] -= 1
        if item.key == "k7":
            raise ValueError("broken item")
        return {"source": item.key, "status": "processed"}

    items = [SourceItem("cos", bucket="b", key=f"k{i}") for i in range(60)]
    outcome = run_items(items, work, max_concurrency=5)
    assert live["peak"] <= 5
    assert outcome.peak_concurrency <= 5
    assert [r["source"] for r in outcome.results if r["status"] == "processed"] == [
        f"k{i}" for i in range(60) if i != 7
    ]
    assert [r["source"] for r in outcome.failed] == ["cos://b/k7"]


def test_run_items_backs_off_on_throttling() -> None:
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def work(item: SourceItem) -> dict[str, Any]:
        with lock:
            calls[item.key or ""] = calls.get(item.key or "", 0) + 1
            first = calls[item.key or ""] == 1
        if first and item.key in ("k1", "k2"):
            raise TencentCloudThrottlingError("slow down", code="SlowDown", status_code=503)
        return {"source": item.key, "status": "processed"}

    items = [SourceItem("cos", bucket="b", key=f"k{i}") for i in range(6)]
    outcome = run_items(items, work, max_concurrency=4, throttle_pause=0.001)
    assert not outcome.failed
    assert calls["k1"] == calls["k2"] == 2 and calls["k0"] == 1


# -- batches through Airflow --------------------------------------------------------------------------------------
def test_batch_of_200_images_with_bounded_concurrency(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "batch/", 200)
    with _dag("ci_batch_200") as dag:
        PortraitMattingOperator(
            task_id="process",
            bucket=BUCKET,
            source_prefix="batch/",
            output_key="matted/{{ ds }}/{stem}.png",
            max_concurrency=8,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"

    docs = xcom(dr, "process")
    assert len(docs) == 200
    assert {d["status"] for d in docs} == {"processed"}
    assert [d["source_key"] for d in docs] == keys
    summary = xcom(dr, "process", key="batch_summary")
    assert summary["processed"] == 200 and summary["failed"] == 0
    assert 1 <= summary["peak_concurrency"] <= 8
    assert emu.stats.count(operation="ImageProcess") == 200
    assert emu.stats.count(operation="ListObjects") == 1
    outputs = emu.list_keys(BUCKET, "matted/2024-01-01/")
    assert len(outputs) == 200
    assert alpha_is_varied(open_image(emu.get_object(BUCKET, outputs[123]).data))
    assert all(len(json.dumps(d)) < 1000 for d in docs), "XCom documents stay small (no image bytes)"
    link = xcom(dr, "process", key="_link_COSObjectLink")
    assert link.endswith("?prefix=matted%2F2024-01-01%2F")  # the emulator view's listing of the shared folder


def _failing_batch(emu: Any) -> tuple[list[str], list[str]]:
    keys = _put_many(emu, "mixed/", 12)
    bad = [keys[2], keys[5], keys[11]]
    for key in bad:
        emu.put_object(BUCKET, key, b"definitely not an image", content_type="image/png")
    return keys, bad


def test_batch_fails_after_trying_every_item_and_names_the_failures(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys, bad = _failing_batch(emu)
    with _dag("ci_batch_failures") as dag:
        GoodsMattingOperator(
            task_id="process", bucket=BUCKET, source_keys=keys, output_key="g/{stem}.png", max_concurrency=4, retries=0
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "failed"
    failed = xcom(dr, "process", key="failed_items")
    assert sorted(f["source"] for f in failed) == sorted(f"cos://{BUCKET}/{k}" for k in bad)
    assert all(f["error_code"] for f in failed)
    assert emu.stats.count(operation="ImageProcess") == 12  # every item was tried
    assert sorted(emu.list_keys(BUCKET, "g/")) == sorted(f"g/img{i:03d}.png" for i in range(12) if i not in (2, 5, 11))


def test_batch_continue_on_error_reports_failures(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys, bad = _failing_batch(emu)
    with _dag("ci_batch_continue") as dag:
        GoodsMattingOperator(
            task_id="process", bucket=BUCKET, source_keys=keys, output_key="g/{stem}.png", continue_on_error=True
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    docs = xcom(dr, "process")
    assert [d["source"] for d in docs if d["status"] == "failed"] == [f"cos://{BUCKET}/{k}" for k in bad]
    assert sum(d["status"] == "processed" for d in docs) == 9


def test_batch_survives_throttling(fast_retry_conn: Any) -> None:
    emu = fast_retry_conn
    _put_many(emu, "busy/", 30)
    emu.set_faults(FaultConfig(seed=7, per_operation={"ImageProcess": OperationFaults(0.3, ("throttle",))}))
    with _dag("ci_batch_throttle") as dag:
        FaceBeautyOperator(
            task_id="process", bucket=BUCKET, source_prefix="busy/", output_key="fb/{name}", max_concurrency=6
        )
    dr = run_dag(dag, logical_date=START)
    emu.set_faults(None)
    assert state(dr, "process") == "success"
    assert emu.stats.errors(operation="ImageProcess") > 0, "the fault injector must have throttled some calls"
    assert emu.stats.count(operation="ImageProcess", ok=True) == 30
    assert len(emu.list_keys(BUCKET, "fb/")) == 30


def test_modified_window_from_the_data_interval(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "daily/", 5)
    now = datetime.now(timezone.utc)
    for key in keys[:2]:  # two sources changed long before this run's interval
        emu.store.get(BUCKET, key).last_modified = now - timedelta(days=3)
    logical = pendulum.instance(now - timedelta(hours=1))
    with _dag("ci_window", schedule="@hourly") as dag:
        PortraitMattingOperator(
            task_id="process",
            bucket=BUCKET,
            source_prefix="daily/",
            output_key="w/{stem}.png",
            modified_after="{{ data_interval_start - macros.timedelta(days=1) }}",
            modified_before="{{ data_interval_end + macros.timedelta(days=1) }}",
        )
    dr = run_dag(dag, logical_date=logical)
    assert state(dr, "process") == "success"
    assert [d["source_key"] for d in xcom(dr, "process")] == keys[2:]
    assert emu.stats.count(operation="ImageProcess") == 3


# -- reruns -------------------------------------------------------------------------------------------------------
def test_rerun_of_a_batch_pays_nothing_twice(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "rerun/", 10)
    with _dag("ci_rerun_batch") as dag:
        PortraitMattingOperator(
            task_id="process", bucket=BUCKET, source_prefix="rerun/", output_key="rerun-out/{{ ds }}/{stem}.png"
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    first = paid(emu)
    assert first["ImageProcess"] == 10

    dr = run_dag(dag, logical_date=START)  # dag.test clears the existing task instances and runs again
    assert state(dr, "process") == "success"
    assert paid(emu) == first
    assert {d["status"] for d in xcom(dr, "process")} == {"skipped"}
    assert all(d["etag"] and d["size"] for d in xcom(dr, "process"))

    # A source that changed after its output was made is processed again, and only that one.
    out = emu.store.get(BUCKET, "rerun-out/2024-01-01/img004.png")
    out.last_modified = out.last_modified - timedelta(minutes=5)
    dr = run_dag(dag, logical_date=START)
    assert [d["source_key"] for d in xcom(dr, "process") if d["status"] == "processed"] == [keys[4]]
    assert paid(emu)["ImageProcess"] == 11


def test_overwrite_redoes_the_paid_call(tencent_conn: Any) -> None:
    emu = tencent_conn
    _put_many(emu, "ow/", 3)
    with _dag("ci_rerun_overwrite") as dag:
        GoodsMattingOperator(
            task_id="process", bucket=BUCKET, source_prefix="ow/", output_key="ow-out/{stem}.png", if_exists="overwrite"
        )
    run_dag(dag, logical_date=START)
    run_dag(dag, logical_date=START)
    assert emu.stats.count(operation="ImageProcess") == 6


@pytest.mark.parametrize("mode", ["upload", "download"])
def test_rerun_skip_in_upload_and_download_modes(tencent_conn: Any, tmp_path: Path, mode: str) -> None:
    emu = tencent_conn
    local = tmp_path / "src.png"
    local.write_bytes(subject_png())
    emu.put_object(BUCKET, "in/src.png", subject_png())
    kwargs: dict[str, Any] = (
        {"source_path": str(local), "upload_key": "orig/{name}", "output_key": "res/{stem}.png"}
        if mode == "upload"
        else {"source_key": "in/src.png", "output_path": str(tmp_path / "res" / "{name}")}
    )
    with _dag(f"ci_rerun_{mode}") as dag:
        PortraitMattingOperator(task_id="process", mode=mode, bucket=BUCKET, if_exists="skip", **kwargs)
    run_dag(dag, logical_date=START)
    first = paid(emu)
    assert sum(first.values()) == 1
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert paid(emu) == first
    assert xcom(dr, "process")["status"] == "skipped"


# -- dynamic task mapping -----------------------------------------------------------------------------------------
def test_partial_expand_one_mapped_task_per_image(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "mapped/", 3)
    with _dag("ci_mapped") as dag:
        PortraitMattingOperator.partial(
            task_id="process", bucket=BUCKET, output_key="mapped-out/{{ ds }}/{stem}.png", padding_layout=(2, 2)
        ).expand(source_key=keys)
    dr = run_dag(dag, logical_date=START)
    for i, key in enumerate(keys):
        assert state(dr, "process", map_index=i) == "success"
        doc = xcom(dr, "process", map_index=i)
        assert doc["source_key"] == key
        img = open_image(emu.get_object(BUCKET, doc["output_key"]).data)
        assert img.size == (36, 36) and alpha_is_varied(img)
    assert emu.stats.count(operation="ImageProcess") == 3


def test_upload_batch_from_a_directory(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    src = tmp_path / "shots"
    src.mkdir()
    for i in range(4):
        (src / f"s{i}.png").write_bytes(subject_png())
    with _dag("ci_upload_dir") as dag:
        GoodsMattingOperator(
            task_id="process",
            mode="upload",
            bucket=BUCKET,
            source_path=str(src),
            upload_key="orig/{{ ds }}/{name}",
            output_key="cut/{{ ds }}/{stem}.png",
            max_concurrency=2,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    docs = xcom(dr, "process")
    assert [d["source"] for d in docs] == [str(src / f"s{i}.png") for i in range(4)]
    assert sorted(emu.list_keys(BUCKET, "orig/2024-01-01/")) == [f"orig/2024-01-01/s{i}.png" for i in range(4)]
    assert sorted(emu.list_keys(BUCKET, "cut/2024-01-01/")) == [f"cut/2024-01-01/s{i}.png" for i in range(4)]
    assert paid(emu)["PicOperationsUpload"] == 4


def test_download_batch_to_a_local_folder(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    keys = _put_many(emu, "dl/", 5)
    out = tmp_path / "results"
    with _dag("ci_download_batch") as dag:
        FaceBeautyOperator(
            task_id="process",
            mode="download",
            bucket=BUCKET,
            source_keys=keys,
            strength=0.2,
            output_path=str(out / "{stem}.png"),
            max_concurrency=3,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert sorted(p.name for p in out.iterdir()) == [f"img{i:03d}.png" for i in range(5)]
    assert all(open_image((out / f"img{i:03d}.png").read_bytes()).size == (32, 32) for i in range(5))
    assert paid(emu)["CIProcess"] == 5
    # The default for a batch is if_exists="skip": a rerun pays nothing.
    run_dag(dag, logical_date=START)
    assert paid(emu)["CIProcess"] == 5
