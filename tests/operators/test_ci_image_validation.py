"""Every documented parameter rule fails locally: at DAG parse for static values, before any request for rendered
ones. The error names the parameter, the value and the rule; the emulator sees zero requests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators.ci_image import (
    FaceBeautyOperator,
    GoodsMattingOperator,
    PortraitMattingOperator,
)
from tests.conftest import run_dag
from tests.operators.image_support import BUCKET, START, state, subject_png

P, G, F = PortraitMattingOperator, GoodsMattingOperator, FaceBeautyOperator
BASE: dict[str, Any] = {"bucket": BUCKET, "source_key": "in/a.png", "output_key": "out/{stem}.png"}

# (operator, overrides (None removes the base key), parameter named in the error, fragment of the rule)
STATIC_CASES = [
    (P, {"center_layout": 2}, "center_layout", "0..1"),
    (G, {"center_layout": -1}, "center_layout", "0..1"),
    (P, {"center_layout": "yes"}, "center_layout", "integer"),
    (P, {"center_layout": True}, "center_layout", "integer"),
    (P, {"padding_layout": (1001, 0)}, "padding_layout[0]", "0..1000"),
    (G, {"padding_layout": (0, 1001)}, "padding_layout[1]", "0..1000"),
    (P, {"padding_layout": (-1, 5)}, "padding_layout[0]", "0..1000"),
    (P, {"padding_layout": "2000x10"}, "padding_layout[0]", "0..1000"),
    (P, {"padding_layout": "20*10"}, "padding_layout", "<dx>x<dy>"),
    (G, {"padding_layout": (1, 2, 3)}, "padding_layout", "(dx, dy)"),
    (F, {"strength": 1.5}, "strength", "0.0..1.0"),
    (F, {"strength": -0.1}, "strength", "0.0..1.0"),
    (F, {"strength": "strong"}, "strength", "number"),
    (F, {"strength": float("nan")}, "strength", "number"),
    (F, {"ignore_error": 2}, "ignore_error", "0..1"),
    (F, {"ignore_error": "maybe"}, "ignore_error", "integer"),
    (P, {"mode": "stream"}, "mode", "cloud, upload, download"),
    (P, {"if_exists": "sometimes"}, "if_exists", "skip, overwrite"),
    (P, {"max_concurrency": 0}, "max_concurrency", "1..256"),
    (P, {"max_concurrency": 10_000}, "max_concurrency", "1..256"),
    (P, {"continue_on_error": "yes"}, "continue_on_error", "boolean"),
    (P, {"bucket": None}, "bucket", "required"),
    (P, {"bucket": ""}, "bucket", "non-empty"),
    (P, {"output_key": None}, "output_key", "required"),
    (P, {"output_key": "out/"}, "output_key", "must not end with '/'"),
    (P, {"output_key": "out/{base}.png"}, "output_key", "unknown placeholder {base}"),
    (P, {"source_key": None, "source_prefix": "in/", "output_key": "out/result.png"}, "output_key", "{stem}"),
    (P, {"source_key": None}, "source_key / source_keys / source_prefix", "exactly one source"),
    (P, {"source_keys": ["in/b.png"]}, "source_key / source_keys", "exactly one source"),
    (P, {"source_key": None, "source_keys": []}, "source_keys", "non-empty list"),
    (P, {"source_key": None, "source_keys": "in/a.png"}, "source_keys", "non-empty list"),
    (P, {"source_key": "in/"}, "source_key", "not a folder"),
    (P, {"detect_url": "http://example.com/a.png"}, "detect_url", "not allowed"),
    (P, {"mode": "download", "source_key": None, "detect_url": "ftp://example.com/a.png"}, "detect_url", "http"),
    (P, {"mode": "download", "output_key": None}, "output_key / output_path", "download mode writes"),
    (P, {"mode": "download", "output_path": "/tmp/x.png"}, "output_key / output_path", "download mode writes"),
    (P, {"output_path": "/tmp/x.png"}, "output_path", "not allowed"),
    (P, {"mode": "upload", "source_key": None, "upload_key": "u/{name}"}, "source_path", "required"),
    (P, {"mode": "upload", "source_key": None, "source_path": "/tmp/a.png"}, "upload_key", "required"),
    (P, {"mode": "upload", "source_path": "/tmp/a.png", "upload_key": "u/{name}"}, "source_key", "not allowed"),
    (P, {"mode": "upload", "source_key": None, "source_path": [], "upload_key": "u"}, "source_path", "non-empty"),
    (P, {"source_key": None, "source_prefix": "in/", "modified_after": "yesterday"}, "modified_after", "ISO-8601"),
    (P, {"modified_before": "2024-01-01T00:00:00+00:00"}, "modified_before", "only applies with source_prefix"),
]


def _kwargs(overrides: dict[str, Any]) -> dict[str, Any]:
    kwargs = {**BASE, **overrides}
    return {k: v for k, v in kwargs.items() if v is not None}


@pytest.mark.parametrize(
    ("op_cls", "overrides", "param", "rule"),
    STATIC_CASES,
    ids=[f"{c[0].__name__}-{c[2]}-{i}" for i, c in enumerate(STATIC_CASES)],
)
def test_static_problem_fails_at_dag_parse(
    tencent_conn: Any, op_cls: type, overrides: dict[str, Any], param: str, rule: str
) -> None:
    with pytest.raises(ParameterValidationError) as info, DAG("ci_bad_static", schedule=None, start_date=START):
        op_cls(task_id="process", **_kwargs(overrides))
    message = str(info.value)
    assert message.startswith(f"Invalid {param}="), message
    assert rule in message, message
    assert tencent_conn.stats.count() == 0


def test_templated_values_are_not_checked_at_parse() -> None:
    with DAG("ci_templated_ok", schedule=None, start_date=START):
        PortraitMattingOperator(
            task_id="a",
            bucket="{{ params.b }}",
            source_key="{{ params.k }}",
            output_key="{{ params.o }}",
            center_layout="{{ params.c }}",
            padding_layout=("{{ params.dx }}", 3),
            mode="{{ params.m }}",
        )
        FaceBeautyOperator(
            task_id="b",
            bucket=BUCKET,
            source_key="k.png",
            output_key="o.png",
            strength="{{ params.s }}",
            ignore_error="{{ params.i }}",
            max_concurrency="{{ params.n }}",
        )


# (operator, overrides with a template, params that render a bad value, parameter named)
RENDERED_CASES = [
    (P, {"center_layout": "{{ params.v }}"}, {"v": 5}, "center_layout"),
    (G, {"padding_layout": "{{ params.v }}"}, {"v": "2000x1"}, "padding_layout[0]"),
    (G, {"padding_layout": ("{{ params.v }}", 1)}, {"v": 1001}, "padding_layout[0]"),
    (F, {"strength": "{{ params.v }}"}, {"v": 3}, "strength"),
    (F, {"ignore_error": "{{ params.v }}"}, {"v": 7}, "ignore_error"),
    (P, {"mode": "{{ params.v }}"}, {"v": "bogus"}, "mode"),
    (P, {"output_key": "{{ params.v }}"}, {"v": "folder/"}, "output_key"),
    (P, {"max_concurrency": "{{ params.v }}"}, {"v": 0}, "max_concurrency"),
    (P, {"if_exists": "{{ params.v }}"}, {"v": "never"}, "if_exists"),
    (
        P,
        {"source_key": None, "source_prefix": "in/", "modified_after": "{{ params.v }}"},
        {"v": "soon"},
        "modified_after",
    ),
    (
        P,
        {
            "source_key": None,
            "source_prefix": "in/",
            "modified_after": "{{ params.v }}",
            "modified_before": "2023-01-01T00:00:00+00:00",
        },
        {"v": "2024-01-01T00:00:00+00:00"},
        "modified_before",
    ),
    (
        P,
        {"source_key": None, "source_keys": ["a/x.png", "b/x.png"], "output_key": "{{ params.v }}/{name}"},
        {"v": "flat"},
        "output_key",
    ),
    (
        P,
        {"source_key": None, "mode": "download", "detect_url": "{{ params.v }}", "output_key": "o.png"},
        {"v": "file:///etc/passwd"},
        "detect_url",
    ),
]


@pytest.mark.parametrize(
    ("op_cls", "overrides", "params", "param"),
    RENDERED_CASES,
    ids=[f"{c[0].__name__}-{c[3]}-{i}" for i, c in enumerate(RENDERED_CASES)],
)
def test_rendered_problem_fails_before_any_request(
    tencent_conn: Any, op_cls: type, overrides: dict[str, Any], params: dict[str, Any], param: str
) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "in/a.png", subject_png())
    with DAG(
        f"ci_bad_rendered_{param.replace('[', '').replace(']', '')}", schedule=None, start_date=START, params=params
    ) as dag:
        op = op_cls(task_id="process", retries=0, **_kwargs(overrides))
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "failed"
    assert emu.stats.snapshot()["total"] == 0

    # The same check, run directly on the rendered values, names the parameter, the value and the rule.
    for name, value in overrides.items():
        if isinstance(value, str) and "{{" in value:
            setattr(op, name, value.replace("{{ params.v }}", str(params["v"])))
        elif isinstance(value, tuple):
            setattr(op, name, tuple(params["v"] if v == "{{ params.v }}" else v for v in value))
    with pytest.raises(ParameterValidationError, match=rf"^Invalid {re.escape(param)}=.*: .+") as info:
        op._validate(rendered=True)
        op._plan()
    assert info.value.param == param
