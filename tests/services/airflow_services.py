"""Real Airflow services on loopback for end-to-end tests: API server, scheduler, DAG processor, triggerer.

Each component runs as its own `airflow` process against a private AIRFLOW_HOME with a SQLite DB and the
LocalExecutor, as a small deployment would. Tests drive it through the public REST API, as the UI does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowServices:
    def __init__(self, home: Path, dags_folder: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.home = home
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._jwt: str | None = None
        # Extension points for other deployments (tests/production): which processes run, and their commands.
        self.components: tuple[str, ...] = COMPONENTS

    def component_args(self, component: str) -> list[str]:
        args = [AIRFLOW, component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        return args

    def component_env(self, component: str) -> dict[str, str]:
        return self.env

    def log_path(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        subprocess.run([AIRFLOW, "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=300)
        for component in self.components:
            self.start_component(component)
        self.wait_for(lambda: self._get("/api/v2/version") is not None, 120, "the API server")

    def start_component(self, component: str) -> None:
        args = self.component_args(component)
        log = self.log_path(component).open("ab")
        # A process group per component, so a stop takes its workers with it.
        self.procs[component] = subprocess.Popen(
            args, env=self.component_env(component), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop_component(self, component: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(component, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def restart_component(self, component: str) -> None:
        self.stop_component(component)
        self.start_component(component)

    def stop(self) -> None:
        for component in reversed(self.components):
            self.stop_component(component)

    # REST API, as the UI uses it
    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            payload = resp.read()
        return json.loads(payload) if payload else None

    def _token(self) -> str:
        """A JWT from the simple auth manager's no-credentials endpoint (all-admins mode), as the UI gets one."""
        if self._jwt is None:
            self._jwt = str(self._request("GET", "/auth/token", auth=False)["access_token"])
        return self._jwt

    def _get(self, path: str) -> Any:
        try:
            return self._request("GET", path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def wait_for(self, condition: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}; logs in {self.home}")

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        self.wait_for(lambda: self._get(f"/api/v2/dags/{dag_id}"), timeout, f"DAG {dag_id} to be parsed")

    def trigger_dag(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def dag_run_state(self, dag_id: str, run_id: str) -> str:
        run = self._get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
        return str(run["state"]) if run else "unknown"

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}/taskInstances"
        listing = self._get(path) or {"task_instances": []}
        return {ti["task_id"]: ti for ti in listing["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        def finished() -> str | None:
            state = self.dag_run_state(dag_id, run_id)
            return state if state in ("success", "failed") else None

        return str(self.wait_for(finished, timeout, f"run {run_id} of {dag_id} to finish"))

    def wait_for_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120) -> None:
        self.wait_for(
            lambda: self.task_instances(dag_id, run_id).get(task_id, {}).get("state") == state,
            timeout,
            f"{task_id} to be {state}",
        )

    def clear_task(self, dag_id: str, run_id: str, task_ids: list[str], downstream: bool = True) -> None:
        """Clear task instances the way the UI's Clear button does."""
        self._request(
            "POST",
            f"/api/v2/dags/{dag_id}/clearTaskInstances",
            {
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "include_downstream": downstream,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"
            f"/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        )
        entry = self._get(path)
        return entry["value"] if entry else None


@contextlib.contextmanager
def airflow_services(
    home: Path, dags_folder: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[AirflowServices]:
    services = AirflowServices(home, dags_folder, extra_env)
    try:
        services.start()
        yield services
    finally:
        services.stop()
