"""SegmentPortraitPartsOperator end to end (dag.test -> operator -> BDAHook/CIHook -> SDKs -> emulator)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from PIL import Image

from airflow_provider_tencent_ci.constants import SEGMENTATION_PARTS
from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator, prepare_image
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

OP = SegmentPortraitPartsOperator


def _dag(dag_id: str, **kwargs: Any) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def _check_pair(portrait: bytes, mask: bytes, size: tuple[int, int]) -> None:
    p = open_image(portrait)
    assert p.format == "PNG" and p.size == size
    assert alpha_is_varied(p), "the portrait must have a transparent background"
    m = open_image(mask)
    assert m.format == "PNG" and m.size == size
    lo, hi = m.convert("L").getextrema()
    assert lo != hi, "the mask must separate the parts from the rest"


def _image(size: tuple[int, int], fmt: str, mode: str = "RGB", noise: bool = False) -> bytes:
    if noise:
        img = Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))
    else:
        img = Image.new(mode, size, (120, 60, 30) if mode == "RGB" else 120)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


# -- the three kinds of source ------------------------------------------------------------------------------------
def test_cos_source_to_cos_outputs(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "people/ann.png", subject_png(48))
    with _dag("bda_cos") as dag:
        OP(
            task_id="segment",
            parts=["Head", "Body"],
            bucket=BUCKET,
            source_key="people/ann.png",
            portrait_output_key="seg/{{ ds }}/{stem}.png",
            mask_output_key="seg/{{ ds }}/{stem}.mask.png",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    portrait = emu.get_object(BUCKET, "seg/2024-01-01/ann.png")
    mask = emu.get_object(BUCKET, "seg/2024-01-01/ann.mask.png")
    _check_pair(portrait.data, mask.data, (48, 48))
    doc = xcom(dr, "segment")
    assert doc["status"] == "processed"
    assert doc["source"] == f"cos://{BUCKET}/people/ann.png"
    assert (doc["portrait_bucket"], doc["portrait_key"]) == (BUCKET, "seg/2024-01-01/ann.png")
    assert doc["portrait_etag"] == portrait.etag.strip('"') and doc["portrait_size"] == len(portrait.data)
    assert doc["mask_key"] == "seg/2024-01-01/ann.mask.png" and doc["mask_size"] == len(mask.data)
    assert isinstance(doc["image_rects"], list) and doc["image_rects"]
    assert {"X", "Y", "Width", "Height", "Label"} <= set(doc["image_rects"][0])
    assert doc["request_id"] and doc["resized"] is False
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 1
    assert emu.stats.count(operation="GetObject") == 1
    assert emu.stats.count(operation="PutObject") == 2
    assert xcom(dr, "segment", key="_link_COSObjectLink").endswith("?prefix=seg%2F2024-01-01%2F")  # emulator view


def test_local_source_to_local_outputs(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    src = tmp_path / "in" / "bob.jpg"
    src.parent.mkdir()
    src.write_bytes(subject_png(40, fmt="JPEG"))
    out = tmp_path / "out"
    with _dag("bda_local") as dag:
        OP(
            task_id="segment",
            parts="Face,Hair",
            source_path=str(src),
            portrait_output_path=str(out / "{stem}.png"),
            mask_output_path=str(out / "{stem}-mask.png"),
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    _check_pair((out / "bob.png").read_bytes(), (out / "bob-mask.png").read_bytes(), (40, 40))
    assert sorted(os.listdir(out)) == ["bob-mask.png", "bob.png"], "no temp files left"
    doc = xcom(dr, "segment")
    assert doc["portrait_path"] == str(out / "bob.png")
    assert doc["portrait_size"] == (out / "bob.png").stat().st_size
    assert emu.stats.snapshot()["total"] == 1  # one paid call, nothing else
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 1


def test_url_source(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "public/cat.png", subject_png(48))
    url = f"https://{BUCKET}.cos.ap-guangzhou.myqcloud.com/public/cat.png"
    with _dag("bda_url") as dag:
        OP(
            task_id="segment",
            parts=["Background"],
            url=url,
            bucket=BUCKET,
            portrait_output_key="u/{stem}.png",
            mask_output_key="u/{stem}_mask.png",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    _check_pair(emu.get_object(BUCKET, "u/cat.png").data, emu.get_object(BUCKET, "u/cat_mask.png").data, (48, 48))
    assert xcom(dr, "segment")["source"] == url
    assert emu.stats.count(operation="GetObject") == 0  # the service fetched the URL itself
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 1


# -- documented image limits ---------------------------------------------------------------------------------------
LIMIT_CASES = [
    ("gif", lambda: _image((40, 40), "GIF", mode="P"), "GIF images are not supported"),
    ("not-an-image", lambda: b"plain text, not pixels", "not decodable"),
    ("webp", lambda: _image((40, 40), "WEBP"), "format WEBP is not supported"),
    ("too-wide", lambda: _image((2000, 16), "PNG"), "must be < 2000"),
    ("too-tall", lambda: _image((16, 2400), "PNG"), "must be < 2000"),
    ("too-heavy", lambda: _image((1300, 1300), "PNG", noise=True), "must be <= 5242880"),
]


@pytest.mark.parametrize(("name", "make", "rule"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_local_limits_fail_before_any_request(
    tencent_conn: Any, tmp_path: Path, name: str, make: Any, rule: str
) -> None:
    emu = tencent_conn
    src = tmp_path / f"{name}.img"
    src.write_bytes(make())
    with pytest.raises(ParameterValidationError, match=re.escape(rule)) as info:
        prepare_image("source_path", str(src), src.read_bytes(), auto_resize=False)
    assert info.value.param == "source_path" and info.value.value == str(src)
    if name in ("gif", "too-wide"):  # and through Airflow: the task fails, the service is never called
        with _dag(f"bda_limit_{name.replace('-', '_')}") as dag:
            OP(
                task_id="segment",
                parts=["Head"],
                source_path=str(src),
                portrait_output_path=str(tmp_path / "p.png"),
                retries=0,
            )
        dr = run_dag(dag, logical_date=START)
        assert state(dr, "segment") == "failed"
        assert not (tmp_path / "p.png").exists()
    assert emu.stats.snapshot()["total"] == 0


@pytest.mark.parametrize(("name", "make"), [(c[0], c[1]) for c in LIMIT_CASES if c[0].startswith("too-")])
def test_auto_resize_downscales_to_fit(tencent_conn: Any, tmp_path: Path, name: str, make: Any) -> None:
    emu = tencent_conn
    src = tmp_path / f"{name}.png"
    src.write_bytes(make())
    original = open_image(src.read_bytes())
    with _dag(f"bda_resize_{name.replace('-', '_')}") as dag:
        OP(
            task_id="segment",
            parts=["Body"],
            source_path=str(src),
            auto_resize=True,
            portrait_output_path=str(tmp_path / "out" / "{stem}.png"),
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    doc = xcom(dr, "segment")
    assert doc["resized"] is True
    result = open_image((tmp_path / "out" / f"{name}.png").read_bytes())
    assert max(result.size) < 2000
    scale = max(result.size) / max(original.size)
    assert all(abs(r - o * scale) <= 1 for r, o in zip(result.size, original.size, strict=True)), "aspect kept"
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 1


# -- parameters ---------------------------------------------------------------------------------------------------
BASE: dict[str, Any] = {"parts": ["Head"], "bucket": BUCKET, "source_key": "a.png", "portrait_output_key": "o/a.png"}
STATIC_CASES = [
    ({"parts": []}, "parts", "non-empty list"),
    ({"parts": ["Head", "Tail"]}, "parts", "must be one of Background"),
    ({"parts": "head"}, "parts", "must be one of"),
    ({"parts": 5}, "parts", "non-empty list"),
    ({"bda_region": "ap-tokyo"}, "bda_region", "ap-beijing, ap-guangzhou, ap-shanghai"),
    ({"source_key": None}, "source_key / source_keys / source_prefix / source_path / url", "exactly one source"),
    ({"source_path": "/tmp/a.png"}, "source_key / source_path", "exactly one source"),
    ({"source_key": None, "url": "ftp://host/a.png"}, "url", "http"),
    ({"source_key": None, "url": []}, "url", "non-empty list"),
    ({"portrait_output_key": None}, "portrait_output_key/portrait_output_path", "at least one output"),
    ({"portrait_output_key": "o/"}, "portrait_output_key", "must not end with '/'"),
    ({"mask_output_key": "m/{size}.png"}, "mask_output_key", "unknown placeholder {size}"),
    ({"source_key": None, "source_prefix": "p/"}, "portrait_output_key", "{stem}"),
    ({"bucket": None, "source_key": None, "source_path": "/tmp/a.png"}, "portrait_output_key", "bucket"),
    ({"auto_resize": "sure"}, "auto_resize", "boolean"),
    ({"if_exists": "ask"}, "if_exists", "skip, overwrite"),
    ({"max_concurrency": -3}, "max_concurrency", "1..256"),
]


@pytest.mark.parametrize(
    ("overrides", "param", "rule"), STATIC_CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(STATIC_CASES)]
)
def test_static_problem_fails_at_dag_parse(tencent_conn: Any, overrides: dict[str, Any], param: str, rule: str) -> None:
    kwargs = {k: v for k, v in {**BASE, **overrides}.items() if v is not None}
    with pytest.raises(ParameterValidationError) as info, _dag("bda_bad_static"):
        OP(task_id="segment", **kwargs)
    assert str(info.value).startswith(f"Invalid {param}="), str(info.value)
    assert rule in str(info.value), str(info.value)
    assert tencent_conn.stats.count() == 0


def test_all_21_parts_are_accepted(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "all/p.png", subject_png(32))
    assert len(SEGMENTATION_PARTS) == 21
    with _dag("bda_all_parts") as dag:
        OP(
            task_id="segment",
            parts=list(SEGMENTATION_PARTS),
            bucket=BUCKET,
            source_key="all/p.png",
            portrait_output_key="all-out/p.png",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 1


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("parts", "Hair,Wings", "parts"),
        ("bda_region", "eu-frankfurt", "bda_region"),
        ("portrait_output_key", "dir/", "portrait_output_key"),
    ],
)
def test_rendered_problem_fails_before_any_request(tencent_conn: Any, field: str, value: str, param: str) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "a.png", subject_png())
    with _dag(f"bda_bad_rendered_{field}", params={"v": value}) as dag:
        op = OP(task_id="segment", retries=0, **{**BASE, field: "{{ params.v }}"})
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "failed"
    assert emu.stats.snapshot()["total"] == 0
    setattr(op, field, value)
    with pytest.raises(ParameterValidationError, match=rf"^Invalid {param}="):
        op._validate(rendered=True)


# -- batches and reruns -------------------------------------------------------------------------------------------
def test_batch_from_prefix_and_rerun_pays_nothing_twice(tencent_conn: Any) -> None:
    emu = tencent_conn
    for i in range(6):
        emu.put_object(BUCKET, f"crowd/p{i}.png", subject_png(32))
    emu.put_object(BUCKET, "crowd/broken.png", b"GIF89a not really")
    with _dag("bda_batch") as dag:
        OP(
            task_id="segment",
            parts=["Head"],
            bucket=BUCKET,
            source_prefix="crowd/",
            max_concurrency=3,
            portrait_output_key="crowd-out/{stem}.png",
            mask_output_key="crowd-out/{stem}.mask.png",
            continue_on_error=True,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    docs = xcom(dr, "segment")
    assert [d["status"] for d in docs] == ["failed"] + ["processed"] * 6
    assert docs[0]["source"] == f"cos://{BUCKET}/crowd/broken.png"
    assert docs[0]["error_code"] == "ParameterValidation"  # refused locally, never sent
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 6
    assert len(emu.list_keys(BUCKET, "crowd-out/")) == 12

    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "success"
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 6
    assert [d["status"] for d in xcom(dr, "segment")] == ["failed"] + ["skipped"] * 6


def test_partial_expand(tencent_conn: Any) -> None:
    emu = tencent_conn
    keys = [f"m/{n}.png" for n in ("a", "b")]
    for key in keys:
        emu.put_object(BUCKET, key, subject_png(32))
    with _dag("bda_mapped") as dag:
        OP.partial(
            task_id="segment", parts=["Face"], bucket=BUCKET, portrait_output_key="m-out/{stem}.png", if_exists="skip"
        ).expand(source_key=keys)
    dr = run_dag(dag, logical_date=START)
    assert [state(dr, "segment", i) for i in range(2)] == ["success", "success"]
    assert [xcom(dr, "segment", map_index=i)["portrait_key"] for i in range(2)] == ["m-out/a.png", "m-out/b.png"]
    run_dag(dag, logical_date=START)
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 2
