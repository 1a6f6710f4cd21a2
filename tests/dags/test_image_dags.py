"""The image example DAGs run green against the emulator, and reruns pay for nothing twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from demo import scenario
from tests.conftest import run_dag
from tests.dags._support import example_dag, has_transparency, image_info, task_states, xcom

BUCKET = scenario.DEFAULT_BUCKET


def _hook() -> Any:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    return CIHook()


def test_daily_matting_processes_the_day_and_a_rerun_pays_nothing(tencent_conn: Any) -> None:
    hook = _hook()
    seeded = scenario.seed_daily_inputs(hook, BUCKET, portraits=2, goods=2)
    # An object outside the prefixes is never touched.
    hook.put_object(BUCKET, "elsewhere/portrait.jpg", b"not listed", content_type="image/jpeg")
    logical_date = scenario.daily_logical_date(seeded)
    day = (logical_date - timedelta(days=1)).strftime("%Y-%m-%d")
    dag = example_dag("tencent_ci_daily_matting")

    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, logical_date=logical_date)
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {"ImageProcess": 4}

    summary = xcom(dr, "summarize")
    assert {k: summary[k]["processed"] for k in ("portraits", "goods")} == {"portraits": 2, "goods": 2}
    expected = [f"matted/portraits/{day}/portrait-0{i}.png" for i in (1, 2)] + [
        f"matted/goods/{day}/goods-0{i}.png" for i in (1, 2)
    ]
    assert sorted(summary["portraits"]["outputs"] + summary["goods"]["outputs"]) == sorted(expected)
    for key in expected:
        data = hook.get_object_bytes(BUCKET, key)
        fmt, mode, _ = image_info(data)
        assert (fmt, mode) == ("PNG", "RGBA"), key
        assert has_transparency(data), key

    # Rerun of the same day (what "Clear" in the UI does): every output exists and is fresh -> no paid call.
    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, logical_date=logical_date)
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {}
    summary = xcom(dr, "summarize")
    assert summary["portraits"]["skipped"] == 2 and summary["goods"]["skipped"] == 2

    # The previous day's run sees none of these arrivals.
    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, logical_date=logical_date - timedelta(days=1))
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {}


def test_portrait_studio_chains_beauty_matting_and_segmentation(tencent_conn: Any, tmp_path: Path) -> None:
    hook = _hook()
    paths = scenario.write_studio_inputs(tmp_path / "portraits", count=2)
    dag = example_dag("tencent_ci_portrait_studio")
    conf = {"local_dir": str(tmp_path / "portraits"), "strength": 0.8, "parts": ["Head", "Hair"], "padding": 10}

    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, run_conf=conf)
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {
        "PicOperationsUpload": 2,
        "ImageProcess": 2,
        "SegmentCustomizedPortraitPic": 2,
    }
    rows = xcom(dr, "report")
    assert [r["portrait"] for r in rows] == [Path(p).stem for p in paths]
    for row in rows:
        assert row["original"] == f"studio/originals/{row['portrait']}.jpg"
        assert row["beauty"] == f"studio/strength-0.8/beauty/{row['portrait']}.png"
        assert row["matting"] == f"studio/strength-0.8_padding-10/matted/{row['portrait']}.png"
        assert row["segmentation"] == f"studio/strength-0.8_padding-10/parts-Head-Hair/{row['portrait']}.png"
        assert image_info(hook.get_object_bytes(BUCKET, row["original"]))[0] == "JPEG"
        # CI returns face beauty results as PNG (the API document's Content-Type: image/png).
        assert image_info(hook.get_object_bytes(BUCKET, row["beauty"]))[0] == "PNG"
        matted = hook.get_object_bytes(BUCKET, row["matting"])
        assert has_transparency(matted)
        # 200x260 input: padding adds 10 px on each side once the subject is centred.
        assert image_info(matted)[0] == "PNG"
        assert has_transparency(hook.get_object_bytes(BUCKET, row["segmentation"]))
    rects = [d.get("image_rects") for d in xcom(dr, "segment_parts")]
    assert all(rects), rects

    # Same parameters again: nothing is paid for twice.
    before = scenario.paid_counts(tencent_conn)
    dr = run_dag(dag, run_conf=conf)
    assert dr.state == "success", task_states(dr)
    assert scenario.paid_calls(before, scenario.paid_counts(tencent_conn)) == {}


def test_portrait_studio_params_are_validated_by_the_schema() -> None:
    from airflow.sdk import ParamsDict

    dag = example_dag("tencent_ci_portrait_studio")
    params: ParamsDict = dag.params
    errors = []
    for bad in ({"strength": 1.5}, {"parts": ["Tail"]}, {"parts": []}, {"padding": -1}, {"padding": 5000}):
        candidate = ParamsDict({k: v for k, v in params.items()})
        name, value = next(iter(bad.items()))
        try:
            candidate[name] = value
            candidate.validate()
        except Exception as exc:
            errors.append(type(exc).__name__)
    assert len(errors) == 5, errors
