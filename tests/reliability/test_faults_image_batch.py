"""A batch of 500 images through PortraitMattingOperator (cloud mode, one dag.test() run) while 20% of the
emulator's answers are throttling, 5xx or connection resets, with added latency on every HEAD.

Every item must end processed or reported failed with its reason, none silently missing; no item is paid for twice
(successful paid calls == distinct outputs written); and no single hook call makes more than ``max_attempts``
requests (counted per object key on the emulator; the batch runner may re-queue an item that is still throttled
after the hook's attempts, ``throttle_rounds`` = 3 times, so the per-item ceiling is max_attempts x 3)."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from airflow_provider_tencent_ci.emulator import FaultConfig, OperationFaults
from tests.conftest import run_dag
from tests.reliability import _support
from tests.reliability._counting import KeyCounter
from tests.reliability._support import BUCKET, FULL_BUCKET

N_IMAGES = 500
MAX_ATTEMPTS = 4
THROTTLE_ROUNDS = 3  # operators/_batch.run_items default
SEED = 20240601


def test_500_images_with_20_percent_faults(emu: Any, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    from airflow.sdk import DAG

    from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator

    conn_id = _support.set_emulator_conn(monkeypatch, emu, "tc_faults", sts=True, max_attempts=MAX_ATTEMPTS)
    image = _support.png(16, 16)
    keys = [f"batch/img-{n:04d}.png" for n in range(N_IMAGES)]
    for key in keys:
        emu.put_object(BUCKET, key, image, content_type="image/png")
    counter = KeyCounter().install(monkeypatch)
    faults = FaultConfig(
        seed=SEED,
        error_rate=0.2,
        errors=("throttle", "5xx", "reset"),
        per_operation={"HeadObject": OperationFaults(error_rate=0.2, latency=0.005)},
    )
    emu.stats.reset()
    emu.set_faults(faults)
    with DAG("rel_faults_image_batch", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        PortraitMattingOperator(
            task_id="matting",
            bucket=BUCKET,
            source_prefix="batch/",
            output_key="matted/{stem}.png",
            max_concurrency=16,
            continue_on_error=True,
            tencentcloud_conn_id=conn_id,
        )
    dr = run_dag(dag)
    emu.set_faults(None)
    ti = dr.get_task_instance("matting")
    docs = ti.xcom_pull(task_ids="matting")
    assert str(ti.state) == "success", ti.state
    assert isinstance(docs, list)

    # Every source accounted for exactly once, processed or failed with a reason.
    sources = [d.get("source_key") or d.get("source") for d in docs]
    by_source = {}
    for d in docs:
        by_source.setdefault(d.get("source_key") or _key_from_label(d.get("source")), []).append(d)
    missing = [k for k in keys if k not in by_source]
    duplicates = [k for k, v in by_source.items() if len(v) > 1]
    assert len(docs) == N_IMAGES, (len(docs), len(sources))
    assert not missing, missing[:5]
    assert not duplicates, duplicates[:5]
    statuses = [d["status"] for d in docs]
    assert set(statuses) <= {"processed", "failed"}, set(statuses)
    failed = [d for d in docs if d["status"] == "failed"]
    for d in failed:
        assert d.get("error"), d  # a reason (the service's code too, when the service answered)
        assert "failed" in d["error"] or d.get("error_code"), d

    # Paid once: successful ImageProcess calls == outputs written == processed items.
    outputs = {k for k in emu.list_keys(BUCKET, prefix="matted/") if "/_manifests/" not in k}
    processed = [d for d in docs if d["status"] == "processed"]
    paid_ok = emu.stats.count(operation="ImageProcess", ok=True)
    assert paid_ok == len(outputs) == len(processed)
    ok_per_key = counter.ok_per_key("ImageProcess")
    assert all(n == 1 for n in ok_per_key.values()), {k: n for k, n in ok_per_key.items() if n > 1}
    for d in processed:
        assert d["output_key"] in outputs

    # Attempts: per item key, the paid call never exceeded max_attempts x throttle rounds; the HEAD (one call per
    # item) never exceeded max_attempts.
    process_per_key = counter.per_key("ImageProcess")
    head_per_key = counter.per_key("HeadObject")
    assert max(process_per_key.values()) <= MAX_ATTEMPTS * THROTTLE_ROUNDS
    over_one_call = {k: n for k, n in process_per_key.items() if n > MAX_ATTEMPTS}
    head_over = {k: n for k, n in head_per_key.items() if n > MAX_ATTEMPTS * THROTTLE_ROUNDS}
    assert not head_over, head_over
    total_requests = emu.stats.count()
    errors = sum(emu.stats.errors(code=c) for c in ("SlowDown", "InternalError", "ConnectionReset"))
    assert errors > 0.1 * total_requests  # the faults really happened
    figures.record(
        "faults: 500 images, 20% throttle/5xx/reset + HEAD latency",
        images=N_IMAGES,
        processed=len(processed),
        failed_with_reason=len(failed),
        silently_missing=len(missing),
        paid_twice=sum(1 for n in ok_per_key.values() if n > 1),
        paid_calls_ok=paid_ok,
        outputs=len(outputs),
        requests_total=total_requests,
        requests_faulted=errors,
        # beyond the first request per (operation, object): HEAD, ImageProcess, the tag's copy, the manifest
        retries=sum(n - 1 for (op, _), n in counter.requests.items() if op != "ListObjects"),
        max_requests_per_item_paid_call=max(process_per_key.values()),
        items_requeued_after_throttling=len(over_one_call),
        max_attempts=MAX_ATTEMPTS,
        seed=SEED,
        failed_reasons=sorted({str(d.get("error_code") or d["error"].split(":")[0]) for d in failed}),
    )


def _key_from_label(label: Any) -> str:
    text = str(label or "")
    return (
        text.split(f"{FULL_BUCKET}/", 1)[-1]
        if FULL_BUCKET in text
        else text.rsplit("/", 2)[-2] + "/" + text.rsplit("/", 1)[-1]
    )
