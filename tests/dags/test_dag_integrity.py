"""The example DAGs load without errors, cost nothing to parse, and carry what users copy (docs, tags, retries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.dags._support import DAG_IDS, EXAMPLE_DAGS, FORBIDDEN_MODULES, REPO, example_dag, example_dagbag

_PROBE = r"""
import importlib.util, json, sys
# What Airflow itself loads to parse any DAG file (airflow.sdk already imports httpx for its API client).
import airflow.sdk  # noqa: F401
from airflow.sdk import DAG, Asset, AssetWatcher, Param, task  # noqa: F401
baseline = set(sys.modules)
spec = importlib.util.spec_from_file_location("example_dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
forbidden = tuple(sys.argv[2].split(","))
print(json.dumps({
    "new": sorted(m for m in set(sys.modules) - baseline if m.split(".")[0] in forbidden),
    "loaded": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in forbidden}),
}))
"""


def test_dagbag_loads_every_example_without_errors() -> None:
    bag = example_dagbag()
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_example_dags_document_themselves(dag_id: str) -> None:
    dag = example_dagbag().dags[dag_id]
    assert dag.doc_md and len(dag.doc_md) > 200
    assert "tencent-ci" in dag.tags and "example" in dag.tags
    for t in dag.tasks:
        assert t.retries >= 1 or t.task_id in ("summarize", "report", "prepare_inputs"), (t.task_id, t.retries)
        conn_id = getattr(t, "tencentcloud_conn_id", "tencentcloud_default")
        assert conn_id == "tencentcloud_default", t.task_id


@pytest.mark.parametrize("path", sorted(p.name for p in EXAMPLE_DAGS.glob("*.py")))
def test_parsing_a_dag_file_imports_no_sdk_and_makes_no_request(path: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # No proxy and an unroutable connection: a parse-time request would fail loudly instead of reaching anything.
    env["AIRFLOW_CONN_TENCENTCLOUD_DEFAULT"] = json.dumps(
        {"conn_type": "tencentcloud", "login": "x", "password": "y", "extra": {"proxy": "http://127.0.0.1:9"}}
    )
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(EXAMPLE_DAGS / path), ",".join(FORBIDDEN_MODULES)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["new"] == [], f"{path} imports {result['new']} at parse time"
    # Only httpx may already be there (Airflow's own import); the Tencent SDKs and Pillow never are.
    assert set(result["loaded"]) <= {"httpx"}, result["loaded"]


# ---- trigger forms -------------------------------------------------------------------------------------------
def test_studio_parts_is_a_multi_select_of_the_segmentation_parts() -> None:
    """Airflow's trigger form renders an array Param with `examples` as a multi-select of those values."""
    from airflow_provider_tencent_ci.constants import SEGMENTATION_PARTS

    schema = example_dag("tencent_ci_portrait_studio").params.get_param("parts").schema
    assert schema["type"] == "array"
    assert schema["examples"] == list(SEGMENTATION_PARTS) and len(SEGMENTATION_PARTS) == 21
    assert schema["items"]["enum"] == list(SEGMENTATION_PARTS)


@pytest.mark.parametrize("dag_id", ["tencent_ci_portrait_studio", "tencent_ci_daily_matting"])
def test_every_trigger_form_field_is_described(dag_id: str) -> None:
    params = example_dag(dag_id).params
    for name in params:
        assert params.get_param(name).description, f"{dag_id}: param {name} has no description"


def test_studio_rules_are_not_raw_regexes() -> None:
    """Airflow rejects a `pattern` mismatch with the raw regex; the studio checks in prepare_inputs instead."""
    params = example_dag("tencent_ci_portrait_studio").params
    assert [name for name in params if "pattern" in params.get_param(name).schema] == []


def _studio_run(conf: dict[str, Any]) -> Any:
    """A run of a freshly parsed studio DAG: dag.test(run_conf=...) leaves the conf in the DAG's params."""
    from tests.airflow_compat import dagbag_class
    from tests.conftest import run_dag

    bag = dagbag_class()(dag_folder=str(EXAMPLE_DAGS / "tencent_ci_portrait_studio.py"))
    return run_dag(bag.dags["tencent_ci_portrait_studio"], run_conf=conf)


def test_studio_default_folder_is_created_and_an_empty_run_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    dr = _studio_run({})
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert (tmp_path / "tencent_ci_studio" / "portraits").is_dir()
    assert states["prepare_inputs"] == "skipped", states
    assert states["upload_with_face_beauty"] == "skipped", states
    assert dr.state == "success"


_BAD_STUDIO_INPUT = [
    ({"output_prefix": "studio/"}, "Invalid output_prefix='studio/': a COS folder without a leading or trailing '/'"),
    ({"local_dir": "/nonexistent/portraits"}, "Invalid local_dir='/nonexistent/portraits': must be an existing folder"),
]


@pytest.mark.parametrize(("conf", "message"), _BAD_STUDIO_INPUT)
def test_studio_bad_input_names_the_parameter_and_the_rule(conf: dict[str, Any], message: str) -> None:
    from airflow_provider_tencent_ci.exceptions import ParameterValidationError

    dag = example_dag("tencent_ci_portrait_studio")
    params = {name: dag.params[name] for name in dag.params} | conf
    with pytest.raises(ParameterValidationError) as excinfo:
        dag.get_task("prepare_inputs").python_callable(params=params)
    assert str(excinfo.value).startswith(message)


def test_studio_bad_input_fails_the_run_without_a_retry() -> None:
    dr = _studio_run(_BAD_STUDIO_INPUT[0][0])
    states = {ti.task_id: (str(ti.state), ti.try_number) for ti in dr.get_task_instances()}
    assert states["prepare_inputs"] == ("failed", 1), states
    assert states["upload_with_face_beauty"][0] in ("upstream_failed", "None"), states
    assert dr.state == "failed"


def test_daily_matting_logs_its_prefixes_and_window(tencent_conn: Any, capfd: pytest.CaptureFixture[str]) -> None:
    import pendulum

    from tests.conftest import run_dag

    dr = run_dag(example_dag("tencent_ci_daily_matting"), logical_date=pendulum.datetime(2031, 5, 2, tz="UTC"))
    assert dr.state == "success"
    out = capfd.readouterr().out
    assert "sources modified from 2031-05-01T00:00:00+00:00 (inclusive) to 2031-05-02T00:00:00+00:00" in out, out
    assert "portraits under 'incoming/portraits/': 0 matched" in out
    assert "goods under 'incoming/goods/': 0 matched" in out
