"""Test harness: a private Airflow home with a SQLite metadata DB per session, and `run_dag()`.

Airflow reads its configuration at import time, so the environment is set before anything imports airflow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="tencent-ci-airflow-home-"))
(_HOME / "dags").mkdir()
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "")
# CI callbacks need a token key (no key, no callback token): tests get one unless the environment sets its own.
os.environ.setdefault("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY", "tests-callback-token-key")
# Tests never reach the real cloud: no proxy from the environment may redirect loopback traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
    os.environ.pop(_var, None)

from typing import TYPE_CHECKING, Any  # noqa: E402

import pytest  # noqa: E402

from tests import airflow_compat  # noqa: E402

if TYPE_CHECKING:
    from airflow.sdk import DAG


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Path:
    """Create the metadata DB once per session."""
    from airflow.utils import db

    db.resetdb()
    return _HOME


def sync_dag(dag: DAG) -> None:
    """Serialize a DAG built inside a test into the metadata DB, as the DAG processor would."""
    airflow_compat.sync_dag(dag, str(_HOME / "dags"))


def run_dag(dag: DAG, **kwargs: Any) -> Any:
    """`dag.test()` for a DAG defined in a test module; returns the DagRun."""
    return airflow_compat.run_dag(dag, str(_HOME / "dags"), **kwargs)


@pytest.fixture
def dag_runner() -> Any:
    return run_dag
