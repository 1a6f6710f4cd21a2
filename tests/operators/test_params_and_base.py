"""The parameter descriptions (params/) and the provider's base operator: one description validates, builds the
request and renders docs/constraints.md; validation errors are final; every operator and the sensor template the
connection id and the region and keep one hook."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator
from airflow_provider_tencent_ci.operators.ci_image import (
    FaceBeautyOperator,
    GoodsMattingOperator,
    PortraitMattingOperator,
)
from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator
from airflow_provider_tencent_ci.params import docs
from airflow_provider_tencent_ci.sensors.ci_job import SegmentVideoBodyJobSensor
from tests.conftest import run_dag
from tests.operators.image_support import BUCKET, START, paid, state, subject_png

REPO = Path(__file__).resolve().parents[2]

COMPONENTS: list[tuple[type, dict[str, Any]]] = [
    (PortraitMattingOperator, {"bucket": BUCKET, "source_key": "in/a.png", "output_key": "out/a.png"}),
    (GoodsMattingOperator, {"bucket": BUCKET, "source_key": "in/a.png", "output_key": "out/a.png"}),
    (FaceBeautyOperator, {"bucket": BUCKET, "source_key": "in/a.png", "output_key": "out/a.png"}),
    (
        SegmentPortraitPartsOperator,
        {"parts": ["Hair"], "bucket": BUCKET, "source_key": "in/a.png", "portrait_output_key": "out/p.png"},
    ),
    (SegmentVideoBodyOperator, {"bucket": BUCKET, "input_object": "in/v.mp4", "output_object": "out/v.mp4"}),
    (SegmentVideoBodyJobSensor, {"job_id": "j" * 33, "bucket": BUCKET}),
]


def test_constraints_doc_is_what_make_docs_writes(tmp_path: Path) -> None:
    """docs/constraints.md is generated from the descriptions (regenerate with `make docs`)."""
    written = tmp_path / "constraints.md"
    docs.main(["docs", str(written)])
    assert (REPO / "docs" / "constraints.md").read_text(encoding="utf-8") == written.read_text(encoding="utf-8")
    text = written.read_text(encoding="utf-8")
    for cls, _ in COMPONENTS:  # every component and every one of its described parameters is documented
        assert cls.params_spec is not None
        for name in cls.params_spec.names:
            assert f"`{name}`" in text, (cls.__name__, name)


@pytest.mark.parametrize(("cls", "kwargs"), COMPONENTS, ids=[c[0].__name__ for c in COMPONENTS])
def test_every_component_templates_conn_id_and_region(cls: type, kwargs: dict[str, Any]) -> None:
    op = cls(task_id="t", **kwargs)
    assert {"tencentcloud_conn_id", "region"} <= set(cls.template_fields)
    assert set(cls.params_spec.template_fields) <= set(cls.template_fields)
    for name in cls.params_spec.names:  # every described parameter is an attribute the checks can read
        assert hasattr(op, name), name


def test_a_subclass_may_set_attributes_after_super_init() -> None:
    """Validation runs when the outermost __init__ returns, whatever order the subclass assigns in."""

    class Centred(PortraitMattingOperator):
        def __init__(self, *, centre: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.center_layout = centre

    Centred(task_id="ok", centre=1, bucket=BUCKET, source_key="a.png", output_key="o/a.png")
    with pytest.raises(ParameterValidationError, match=r"^Invalid center_layout=7: must be an integer in 0\.\.1"):
        Centred(task_id="bad", centre=7, bucket=BUCKET, source_key="a.png", output_key="o/a.png")


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e308, "inf", timedelta(days=400), 0, -1])
@pytest.mark.parametrize("param", ["poll_interval", "max_wait", "callback_fallback_poll_interval"])
def test_non_templated_durations_refuse_absurd_values(param: str, value: Any) -> None:
    with pytest.raises(ParameterValidationError) as info:
        SegmentVideoBodyOperator(
            task_id="svb", bucket=BUCKET, input_object="in/v.mp4", output_object="o.mp4", **{param: value}
        )
    assert info.value.param == param
    assert "must be > 0 seconds and at most 31622400" in str(info.value)


def test_durations_become_seconds() -> None:
    op = SegmentVideoBodyOperator(
        task_id="svb",
        bucket=BUCKET,
        input_object="in/v.mp4",
        output_object="o.mp4",
        poll_interval="2.5",
        max_wait=timedelta(minutes=2),
        reattach_lookback=0,
    )
    assert (op.poll_interval, op.max_wait, op.reattach_lookback) == (2.5, 120.0, 0.0)


def test_rendered_validation_error_fails_once_without_retry(
    tencent_conn: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """A validation error is final: with retries=2 the task runs once and fails, naming parameter, value, rule."""
    emu = tencent_conn
    emu.put_object(BUCKET, "in/a.png", subject_png())
    with DAG("params_final_error", schedule=None, start_date=START, params={"v": 7}) as dag:
        PortraitMattingOperator(
            task_id="process",
            retries=2,
            retry_delay=timedelta(0),
            bucket=BUCKET,
            source_key="in/a.png",
            output_key="out/a.png",
            center_layout="{{ params.v }}",
        )
    dr = run_dag(dag, logical_date=START)
    ti = dr.get_task_instance("process")
    assert state(dr, "process") == "failed"
    assert ti.try_number == 1, f"retried: try {ti.try_number}"
    out, err = capfd.readouterr()  # the task log goes to the console under dag.test()
    assert "Invalid center_layout='7': must be an integer in 0..1" in out + err
    assert emu.stats.count() == 0


def test_sensor_keeps_one_hook_across_pokes(tencent_conn: Any) -> None:
    from tests.triggers.helpers import put_input, submit

    tencent_conn.set_job_timing(5, 5)
    put_input(tencent_conn)
    job_id = submit()
    sensor = SegmentVideoBodyJobSensor(task_id="wait", job_id=job_id, bucket="examplebucket")
    first = sensor.hook
    assert sensor.poke({"ti": None}) is False and sensor.poke({"ti": None}) is False  # still running
    assert sensor.hook is first and sensor._hook() is first
    assert tencent_conn.stats.count(operation="DescribeJobs") == 2


# -- outputs never overwrite their source (compared as stored) -----------------------------------------------------
OVERWRITES = [
    # cloud mode: "/{key}" and "{dir}/{name}" at the bucket root both name the source once the fileid is absolute
    (PortraitMattingOperator, {"source_key": "in/a.png", "output_key": "/{key}"}, "output_key"),
    (PortraitMattingOperator, {"source_key": "a.png", "output_key": "{dir}/{name}"}, "output_key"),
    (FaceBeautyOperator, {"source_key": "in/a.png", "output_key": "//in/a.png"}, "output_key"),
    # download mode to COS: the SDK drops one leading "/"
    (GoodsMattingOperator, {"mode": "download", "source_key": "in/a.png", "output_key": "/in/{name}"}, "output_key"),
    # BDA: a portrait over its source; a mask in the same place as the portrait
    (
        SegmentPortraitPartsOperator,
        {"parts": ["Hair"], "source_key": "in/a.png", "portrait_output_key": "{key}"},
        "portrait_output_key",
    ),
    (
        SegmentPortraitPartsOperator,
        {
            "parts": ["Hair"],
            "source_key": "in/a.png",
            "portrait_output_key": "o/{stem}",
            "mask_output_key": "/o/{stem}",
        },
        "mask_output_key",
    ),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "param"), OVERWRITES, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(OVERWRITES)]
)
def test_output_over_its_source_or_another_output_is_refused(
    tencent_conn: Any, cls: type, kwargs: dict[str, Any], param: str
) -> None:
    emu = tencent_conn
    key = kwargs["source_key"]
    emu.put_object(BUCKET, key, subject_png())
    op = cls(task_id="t", bucket=BUCKET, **kwargs)
    op._validate(rendered=True)
    with pytest.raises(ParameterValidationError) as info:
        op._plan()
    assert info.value.param == param
    assert emu.stats.count() == 0
    assert emu.get_object(BUCKET, key).data == subject_png()


def test_upload_key_equal_to_output_key_is_refused(tencent_conn: Any, tmp_path: Path) -> None:
    src = tmp_path / "a.png"
    src.write_bytes(subject_png())
    op = PortraitMattingOperator(
        task_id="t", mode="upload", bucket=BUCKET, source_path=str(src), upload_key="up/{name}", output_key="/up/{name}"
    )
    op._validate(rendered=True)
    with pytest.raises(ParameterValidationError, match="is also the upload_key of") as info:
        op._plan()
    assert info.value.param == "output_key"
    assert tencent_conn.stats.count() == 0


def test_batch_whose_outputs_are_its_inputs_fails_naming_them(tencent_conn: Any) -> None:
    emu = tencent_conn
    for name in ("x", "y"):
        emu.put_object(BUCKET, f"same/{name}.png", subject_png())
    with DAG("params_batch_self", schedule=None, start_date=START) as dag:
        SegmentPortraitPartsOperator(
            task_id="segment",
            retries=0,
            parts=["Face"],
            bucket=BUCKET,
            source_prefix="same/",
            portrait_output_key="{key}",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "failed"
    assert sum(paid(emu).values()) == 0
    assert emu.stats.count(operation="PutObject") == 0
    op = dag.get_task("segment")
    op._validate(rendered=True)
    with pytest.raises(ParameterValidationError) as info:
        op._plan()
    assert f"cos://{BUCKET}/same/x.png" in str(info.value) and f"cos://{BUCKET}/same/y.png" in str(info.value)
