"""Helpers for the example-DAG tests: load the example DAGs, read results back from COS."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tests.airflow_compat import dagbag_class

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
DAG_IDS = (
    "tencent_ci_daily_matting",
    "tencent_ci_portrait_studio",
    "tencent_ci_video_body",
    "tencent_ci_event_pipeline",
)
FORBIDDEN_MODULES = ("qcloud_cos", "tencentcloud", "PIL", "httpx")

_BAG: Any = None


def example_dagbag() -> Any:
    global _BAG
    if _BAG is None:
        _BAG = dagbag_class()(dag_folder=str(EXAMPLE_DAGS))
    return _BAG


def example_dag(dag_id: str) -> Any:
    bag = example_dagbag()
    dag = bag.dags.get(dag_id)
    assert dag is not None, f"{dag_id} not loaded; import errors: {bag.import_errors}"
    return dag


def image_info(data: bytes) -> tuple[str, str, tuple[int, int]]:
    """(format, mode, size) of an image's bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return str(img.format), img.mode, img.size


def has_transparency(data: bytes) -> bool:
    """An alpha channel with at least one not-fully-opaque pixel."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if img.mode != "RGBA":
            return False
        extrema = img.getchannel("A").getextrema()
        return bool(isinstance(extrema, tuple) and extrema[0] < 255)


def xcom(dr: Any, task_id: str, key: str = "return_value") -> Any:
    ti = dr.get_task_instance(task_id)
    assert ti is not None, task_id
    return ti.xcom_pull(task_ids=task_id, key=key)


def task_states(dr: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
