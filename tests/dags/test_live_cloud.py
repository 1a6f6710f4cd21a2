"""The image example DAGs against the real Tencent Cloud (opt-in; billed).

Runs only when TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY and TENCENTCLOUD_TEST_BUCKET are set (region:
TENCENTCLOUD_TEST_REGION, default ap-guangzhou), and only with ``-m live``. Objects are written under a unique
``airflow-provider-live/<uuid>/`` prefix of the test bucket. tests/conftest.py removes TENCENTCLOUD_SECRET_*
from ``os.environ`` so no other test can reach the cloud; this module reads them from the environment the process
was started with (``/proc/self/environ``) or from TENCENTCLOUD_LIVE_SECRET_ID/KEY.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from demo import scenario
from tests.conftest import run_dag
from tests.dags._support import example_dag, has_transparency, task_states, xcom


def _initial_env(name: str) -> str | None:
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return None
    for entry in raw.split(b"\0"):
        key, _, value = entry.partition(b"=")
        if key.decode(errors="replace") == name:
            return value.decode(errors="replace")
    return None


SECRET_ID = os.environ.get("TENCENTCLOUD_LIVE_SECRET_ID") or _initial_env("TENCENTCLOUD_SECRET_ID")
SECRET_KEY = os.environ.get("TENCENTCLOUD_LIVE_SECRET_KEY") or _initial_env("TENCENTCLOUD_SECRET_KEY")
BUCKET = os.environ.get("TENCENTCLOUD_TEST_BUCKET")
REGION = os.environ.get("TENCENTCLOUD_TEST_REGION", "ap-guangzhou")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (SECRET_ID and SECRET_KEY and BUCKET),
        reason="needs TENCENTCLOUD_(LIVE_)SECRET_ID/KEY and TENCENTCLOUD_TEST_BUCKET",
    ),
]


@pytest.fixture
def live_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    conn = {"conn_type": "tencentcloud", "login": SECRET_ID, "password": SECRET_KEY, "extra": {"region": REGION}}
    monkeypatch.setenv("AIRFLOW_CONN_TENCENTCLOUD_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_TENCENT_CI_BUCKET", str(BUCKET))
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    return f"airflow-provider-live/{uuid.uuid4().hex[:12]}"


def test_live_portrait_studio(live_conn: str, tmp_path: Path) -> None:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    scenario.write_studio_inputs(tmp_path / "in", count=1)
    conf = {"local_dir": str(tmp_path / "in"), "output_prefix": live_conn, "strength": 0.5, "padding": 0}
    dr = run_dag(example_dag("tencent_ci_portrait_studio"), run_conf=conf)
    assert dr.state == "success", task_states(dr)
    row = xcom(dr, "report")[0]
    assert has_transparency(CIHook().get_object_bytes(str(BUCKET), row["matting"]))


def test_live_daily_matting(live_conn: str) -> None:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook: Any = CIHook()
    seeded = scenario.seed_daily_inputs(hook, str(BUCKET), portraits=1, goods=1, prefix=live_conn + "/")
    dag = example_dag("tencent_ci_daily_matting")
    conf = {
        "portrait_prefix": f"{live_conn}/{scenario.PORTRAIT_PREFIX}",
        "goods_prefix": f"{live_conn}/{scenario.GOODS_PREFIX}",
        "output_prefix": f"{live_conn}/matted",
    }
    dr = run_dag(dag, logical_date=scenario.daily_logical_date(seeded), run_conf=conf)
    assert dr.state == "success", task_states(dr)
    summary = xcom(dr, "summarize")
    assert summary["portraits"]["processed"] == 1 and summary["goods"]["processed"] == 1
