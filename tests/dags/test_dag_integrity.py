"""The example DAGs load without errors, cost nothing to parse, and carry what users copy (docs, tags, retries)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.dags._support import DAG_IDS, EXAMPLE_DAGS, FORBIDDEN_MODULES, REPO, example_dagbag

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
        assert t.retries >= 1 or t.task_id in ("summarize", "report"), (t.task_id, t.retries)
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
