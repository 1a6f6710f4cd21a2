"""CI image operators end to end: dag.test() -> operator -> CIHook -> qcloud_cos -> emulator.

Each test checks the stored output is a real image of the expected kind, the XCom document and the request
counts the emulator saw.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

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

MATTING = [PortraitMattingOperator, GoodsMattingOperator]
ALL_OPS = [PortraitMattingOperator, GoodsMattingOperator, FaceBeautyOperator]
PROCESS = {
    PortraitMattingOperator: "AIPortraitMatting",
    GoodsMattingOperator: "GoodsMatting",
    FaceBeautyOperator: "AIFaceBeauty",
}


def _dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False)


def _check_output(op_cls: type, data: bytes, size: tuple[int, int] = (32, 32)) -> None:
    img = open_image(data)
    assert img.format == "PNG"
    assert img.size == size
    if op_cls in MATTING:
        assert alpha_is_varied(img), "matting output must have a non-constant alpha channel"


# -- cloud mode ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op_cls", ALL_OPS, ids=lambda c: c.__name__)
def test_cloud_mode_writes_result_to_cos(tencent_conn: Any, op_cls: type) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/person.png", subject_png(), content_type="image/png")
    with _dag(f"ci_cloud_{op_cls.__name__}") as dag:
        op_cls(task_id="process", bucket=BUCKET, source_key="in/person.png", output_key="out/{{ ds }}/{stem}.png")
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"

    key = "out/2024-01-01/person.png"
    rec = emu.get_object(BUCKET, key)
    assert rec is not None, emu.list_keys(BUCKET)
    _check_output(op_cls, rec.data)
    doc = xcom(dr, "process")
    assert doc["status"] == "processed"
    assert doc["source"] == f"cos://{BUCKET}/in/person.png"
    assert (doc["output_bucket"], doc["output_key"]) == (BUCKET, key)
    assert doc["location"].endswith(f"/{key}")
    assert doc["etag"] == rec.etag.strip('"')
    assert doc["size"] == len(rec.data)
    assert doc["request_id"]
    assert doc["process"] == PROCESS[op_cls]
    assert paid(emu) == {"ImageProcess": 1, "PicOperationsUpload": 0, "CIProcess": 0, "SegmentCustomizedPortraitPic": 0}
    # The link was persisted at execute time and rendered into the link XCom by Airflow: the emulator connection
    # has console_base_url, so it opens the output in the emulator's view (test_links.py covers both kinds).
    link = xcom(dr, "process", key="_link_COSObjectLink")
    assert link == f"{emu.console_base_url}/objects/{BUCKET}/{key}"


@pytest.mark.parametrize("op_cls", MATTING, ids=lambda c: c.__name__)
def test_cloud_mode_padding_and_centering_change_the_image(tencent_conn: Any, op_cls: type) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/item.png", subject_png())
    with _dag(f"ci_pad_{op_cls.__name__}") as dag:
        op_cls(
            task_id="process",
            bucket=BUCKET,
            source_key="in/item.png",
            output_key="padded/{name}",
            padding_layout=(10, 4),
            center_layout=1,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    img = open_image(emu.get_object(BUCKET, "padded/item.png").data)
    assert img.size == (32 + 2 * 10, 32 + 2 * 4)
    assert alpha_is_varied(img)
    assert emu.stats.count(operation="ImageProcess") == 1


def test_face_beauty_parameters_reach_the_service(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/face.png", subject_png())
    with _dag("ci_beauty_params") as dag:
        FaceBeautyOperator(
            task_id="process",
            bucket=BUCKET,
            source_key="in/face.png",
            output_key="b/{stem}.png",
            strength="{{ params.strength }}",
            ignore_error=1,
            params={"strength": 0.8},
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    before = open_image(subject_png()).convert("RGB")
    after = open_image(emu.get_object(BUCKET, "b/face.png").data).convert("RGB")
    assert after.size == before.size
    assert list(after.getdata()) != list(before.getdata()), "beauty must change pixels"


def test_output_bucket(tencent_conn: Any) -> None:
    emu = tencent_conn
    other = emu.create_bucket("results")
    emu.put_object(BUCKET, "in/p.png", subject_png())
    with _dag("ci_output_bucket") as dag:
        PortraitMattingOperator(
            task_id="process", bucket=BUCKET, source_key="in/p.png", output_key="m/{stem}.png", output_bucket="results"
        )  # the appid is appended from the connection
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert emu.get_object(other, "m/p.png") is not None
    assert emu.get_object(BUCKET, "m/p.png") is None
    assert xcom(dr, "process")["output_bucket"] == other


# -- upload mode --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op_cls", ALL_OPS, ids=lambda c: c.__name__)
def test_upload_mode_stores_original_and_result(tencent_conn: Any, op_cls: type, tmp_path: Path) -> None:
    emu = tencent_conn
    local = tmp_path / "shot.png"
    local.write_bytes(subject_png())
    with _dag(f"ci_upload_{op_cls.__name__}") as dag:
        op_cls(
            task_id="process",
            mode="upload",
            bucket=BUCKET,
            source_path=str(local),
            upload_key="originals/{name}",
            output_key="results/{stem}.png",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert emu.get_object(BUCKET, "originals/shot.png").data == local.read_bytes()
    result = emu.get_object(BUCKET, "results/shot.png")
    _check_output(op_cls, result.data)
    doc = xcom(dr, "process")
    assert doc["status"] == "processed"
    assert doc["source"] == str(local)
    assert doc["original_key"] == "originals/shot.png"
    assert doc["output_key"] == "results/shot.png"
    assert doc["etag"] == result.etag.strip('"')
    assert paid(emu)["PicOperationsUpload"] == 1
    assert sum(paid(emu).values()) == 1


# -- download mode ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op_cls", ALL_OPS, ids=lambda c: c.__name__)
def test_download_mode_to_local_file(tencent_conn: Any, op_cls: type, tmp_path: Path) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/d.png", subject_png())
    out_dir = tmp_path / "out"
    with _dag(f"ci_download_{op_cls.__name__}") as dag:
        op_cls(
            task_id="process",
            mode="download",
            bucket=BUCKET,
            source_key="in/d.png",
            output_path=str(out_dir / "{stem}-result.png"),
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    target = out_dir / "d-result.png"
    _check_output(op_cls, target.read_bytes())
    assert os.listdir(out_dir) == ["d-result.png"], "no temp file may be left behind"
    doc = xcom(dr, "process")
    assert doc["output_path"] == str(target)
    assert doc["size"] == target.stat().st_size
    assert doc["request_id"]
    assert doc["content_type"] == "image/png"
    assert paid(emu)["CIProcess"] == 1
    assert sum(paid(emu).values()) == 1
    assert emu.stats.count(operation="PutObject") == 0


def test_download_mode_to_cos_key(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/d.png", subject_png())
    with _dag("ci_download_cos") as dag:
        GoodsMattingOperator(
            task_id="process", mode="download", bucket=BUCKET, source_key="in/d.png", output_key="dl/{stem}.png"
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    rec = emu.get_object(BUCKET, "dl/d.png")
    _check_output(GoodsMattingOperator, rec.data)
    assert rec.content_type == "image/png"
    doc = xcom(dr, "process")
    assert doc["etag"] == rec.etag.strip('"') and doc["size"] == len(rec.data)
    assert emu.stats.count(operation="CIProcess") == 1
    assert emu.stats.count(operation="PutObject") == 1


def test_download_mode_from_detect_url(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "public/web.png", subject_png())
    url = f"http://{BUCKET}.cos.ap-guangzhou.myqcloud.com/public/web.png"
    with _dag("ci_detect_url") as dag:
        PortraitMattingOperator(
            task_id="process", mode="download", bucket=BUCKET, detect_url=url, output_path=str(tmp_path / "{name}")
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    _check_output(PortraitMattingOperator, (tmp_path / "web.png").read_bytes())
    assert xcom(dr, "process")["source"] == url
    assert emu.stats.count(operation="CIProcess") == 1


def test_download_failure_leaves_no_partial_file(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/bad.png", b"this is not an image")
    target = tmp_path / "bad.png"
    target.write_bytes(b"previous result")
    with _dag("ci_download_fail") as dag:
        PortraitMattingOperator(
            task_id="process",
            mode="download",
            bucket=BUCKET,
            source_key="in/bad.png",
            output_path=str(tmp_path / "{name}"),
            retries=0,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "failed"
    assert target.read_bytes() == b"previous result"
    assert os.listdir(tmp_path) == ["bad.png"]


# -- pieces: placeholders, links, lineage -------------------------------------------------------------------------
def test_output_placeholders() -> None:
    from airflow_provider_tencent_ci.operators._batch import SourceItem, fill_template, placeholders

    item = SourceItem("cos", bucket=BUCKET, key="in/2024/cat.photo.jpg")
    assert placeholders(item) == {
        "key": "in/2024/cat.photo.jpg",
        "name": "cat.photo.jpg",
        "stem": "cat.photo",
        "ext": "jpg",
        "dir": "in/2024",
    }
    assert fill_template("out/{dir}/{stem}.{ext}.png", item) == "out/in/2024/cat.photo.jpg.png"
    assert placeholders(SourceItem("local", path="/tmp/x/README"))["ext"] == ""
    assert placeholders(SourceItem("url", url="https://h.example/a/b.png?x=1"))["key"] == "a/b.png"


def test_console_link_format() -> None:
    from airflow_provider_tencent_ci.links.cos import COSObjectLink, common_folder

    url = COSObjectLink.format_url(bucket=BUCKET, key="a b/c/d.png", region="ap-guangzhou")
    assert url == (
        "https://console.cloud.tencent.com/cos/bucket?bucket=examplebucket-1250000000"
        "&region=ap-guangzhou&path=%2Fa%20b%2Fc%2F"
    )
    assert common_folder(["x/y/1.png", "x/y/z/2.png", "x/y/3.png"]) == "x/y/"
    assert common_folder(["a.png", "b/c.png"]) == ""


class _RecordingTI:
    """Airflow's TaskInstance stand-in for calling ``execute`` directly (only xcom_push is used)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_openlineage_datasets_without_the_openlineage_provider(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "lin/a.png", subject_png())
    emu.put_object(BUCKET, "lin/b.png", subject_png())
    op = PortraitMattingOperator(
        task_id="lineage", bucket=BUCKET, source_prefix="lin/", output_key="lin-out/{stem}.png"
    )
    ti = _RecordingTI()
    docs = op.execute({"ti": ti})  # type: ignore[arg-type]
    assert [d["status"] for d in docs] == ["processed", "processed"]
    assert op.lineage_datasets() == {
        "inputs": [(f"cos://{BUCKET}", "lin/a.png"), (f"cos://{BUCKET}", "lin/b.png")],
        "outputs": [(f"cos://{BUCKET}", "lin-out/a.png"), (f"cos://{BUCKET}", "lin-out/b.png")],
    }
    assert ti.pushed["cos_object"] == {
        "bucket": BUCKET,
        "key": "lin-out/",
        "region": "ap-guangzhou",
        "console_base_url": emu.console_base_url,
    }
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        assert op.get_openlineage_facets_on_complete(None) is None  # no import error without the provider
    else:  # pragma: no cover - only where the OpenLineage provider is installed
        facets = op.get_openlineage_facets_on_complete(None)
        assert [d.name for d in facets.outputs] == ["lin-out/a.png", "lin-out/b.png"]
