"""The constraint catalogue: one bad value per documented rule, refused locally with an error naming the parameter,
before any request (the emulator counts zero). Driven by ``catalogue.TABLE``, which also renders
docs/constraint-cases.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from tests.reliability import catalogue
from tests.reliability._support import FULL_BUCKET
from tests.reliability.catalogue import DROP, JOB, TABLE, Case

BASES: dict[str, dict[str, Any]] = {
    "PortraitMattingOperator": {"bucket": "examplebucket", "source_key": "in/a.png", "output_key": "out/a.png"},
    "GoodsMattingOperator": {"bucket": "examplebucket", "source_key": "in/a.png", "output_key": "out/a.png"},
    "FaceBeautyOperator": {"bucket": "examplebucket", "source_key": "in/a.png", "output_key": "out/a.png"},
    "SegmentPortraitPartsOperator": {
        "parts": ["Hair"],
        "bucket": "examplebucket",
        "source_key": "in/a.png",
        "portrait_output_key": "out/p-{stem}.png",
    },
    "SegmentVideoBodyOperator": {
        "bucket": "examplebucket",
        "input_object": "in/v.mp4",
        "output_object": "out/v.mp4",
        "deferrable": False,
    },
    "SegmentVideoBodyJobSensor": {"job_id": JOB, "bucket": FULL_BUCKET},
    "CIJobTrigger": {"job_id": JOB, "bucket": FULL_BUCKET},
    "CIJobCallbackTrigger": {"job_id": JOB, "bucket": FULL_BUCKET, "callback_nonce": "n" * 32},
    "CIJobEventTrigger": {"bucket": FULL_BUCKET},
}


def _cls(name: str) -> Any:
    import airflow_provider_tencent_ci.operators.bda as bda
    import airflow_provider_tencent_ci.operators.ci_image as ci_image
    import airflow_provider_tencent_ci.operators.segment_video_body as svb
    import airflow_provider_tencent_ci.sensors.ci_job as sensors
    import airflow_provider_tencent_ci.triggers.ci_job as triggers

    for module in (ci_image, bda, svb, sensors, triggers):
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(name)


def _make_file(kind: str, directory: Path) -> str:
    path = directory / {"gif": "a.gif", "wide_png": "wide.png", "heavy_bmp": "heavy.bmp", "garbage": "junk.png"}[kind]
    if kind == "gif":
        Image.new("RGB", (8, 8), (1, 2, 3)).save(path, "GIF")
    elif kind == "wide_png":
        Image.new("RGB", (2000, 8), (1, 2, 3)).save(path, "PNG")
    elif kind == "heavy_bmp":  # 1200x1100 RGB BMP: ~3.96 MB, ~5.3 MB in base64 (> 5 MiB), both sides < 2000
        Image.frombytes("RGB", (1200, 1100), os.urandom(1200 * 1100 * 3)).save(path, "BMP")
    else:
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    return str(path)


def _cases() -> list[Any]:
    out = []
    for n, case in enumerate(TABLE, 1):
        for comp in case.components:
            marks = [pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else []
            out.append(pytest.param(case, comp, id=f"{n:03d}-{comp}-{case.param}", marks=marks))
    return out


class _TI:
    """The few attributes execute() reads before its first request (a real context needs a running task)."""

    dag_id, task_id, run_id, map_index, try_number = "catalogue", "t", "manual__catalogue", -1, 1

    def __init__(self) -> None:
        self.pushed: list[Any] = []

    def xcom_push(self, *args: Any, **kwargs: Any) -> None:  # e.g. an empty console link persisted up front
        self.pushed.append((args, kwargs))


@pytest.mark.parametrize(("case", "component"), _cases())
def test_constraint_refused_before_any_request(case: Case, component: str, emu: Any, tmp_path: Path) -> None:
    cls = _cls(component)
    kwargs = dict(BASES[component])
    for k, v in case.overrides.items():
        if v is DROP:
            kwargs.pop(k, None)
        else:
            kwargs[k] = v
    for param, kind in case.files.items():
        kwargs[param] = _make_file(kind, tmp_path)
    if "Trigger" not in component:
        kwargs["task_id"] = "t"
    emu.stats.reset()
    with pytest.raises(ParameterValidationError) as info:
        obj = cls(**kwargs)
        if case.stage == "execute":
            obj.execute({"ti": _TI(), "task_instance": _TI()})
        else:
            pytest.fail(f"{component}({case.shown_value}) was accepted at construction")
    assert case.param in str(info.value) or info.value.param.startswith(case.param.split(".")[0]), str(info.value)
    assert case.param.split(".")[0] in str(info.value)
    assert emu.stats.count() == 0, emu.stats.snapshot()


def test_constraints_doc_in_sync() -> None:
    """docs/constraint-cases.md is rendered from the same table (regenerate: make docs)."""
    assert catalogue.DOC.read_text() == catalogue.render()


def test_catalogue_figures(figures: Any) -> None:
    figures.record(
        "hostile input: parameter catalogue",
        constraints=len(TABLE),
        cases=sum(len(c.components) for c in TABLE),
        requests_allowed=0,
        cases_not_enforced=sum(len(c.components) for c in TABLE if c.bug),
    )
