"""A production-shaped Airflow deployment on loopback, started and removed by the tests themselves.

PostgreSQL (a throwaway cluster from ``initdb``) is the metadata DB; Redis is the Celery broker (and the callback
relay); Celery's results go to PostgreSQL; two Celery workers run the tasks and two triggerers run the triggers,
next to the API server, scheduler and DAG processor. Everything binds to 127.0.0.1 on free ports and lives in
temporary directories that are deleted afterwards.

The Airflow processes are ``tests.services.airflow_services.AirflowServices`` with another component list and
environment. Missing Debian packages are installed by ``scripts/install-services.sh`` (root + apt-get); when that
is impossible, ``require_packages()`` skips the test with the script's reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from glob import glob
from pathlib import Path
from typing import Any

import pytest

from tests.services.airflow_services import AIRFLOW, AirflowServices, free_port

REPO = Path(__file__).resolve().parents[2]
_ISO_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)")
_EVENT_JOB_ID = re.compile(r"""['"]job_id['"]: ['"]([A-Za-z0-9]+)['"]""")
INSTALL_SCRIPT = REPO / "scripts" / "install-services.sh"
TRIGGERERS = ("triggerer-1", "triggerer-2")
WORKERS = ("celery-worker-1", "celery-worker-2")


def require_packages() -> None:
    """Install PostgreSQL and redis-server when missing; skip the calling test when they cannot be installed."""
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or [f"{INSTALL_SCRIPT} exited {result.returncode}"])[-1]
        pytest.skip(f"PostgreSQL/Redis not available: {reason}")
    for module in ("celery", "psycopg2", "asyncpg", "redis", "airflow.providers.celery"):
        pytest.importorskip(module, reason=f"{module} is needed for a CeleryExecutor on PostgreSQL (dev extra)")


def plugin_entry_point_path(root: Path) -> Path | None:
    """A path making this checkout's ``airflow.plugins`` entry points visible to Airflow, when not installed yet.

    ``make install`` registers them (pip install -e .); a venv installed from an older pyproject does not have
    them, so this writes a minimal ``*.dist-info`` with the entry points read from pyproject.toml (one source).
    """
    from importlib.metadata import entry_points

    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["airflow.plugins"]
    installed = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    if all(installed.get(name) == value for name, value in declared.items()):
        return None
    dist_info = root / "airflow_provider_tencent_ci_checkout-0.0.0.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: airflow-provider-tencent-ci-checkout\n"
                                        "Version: 0.0.0\n")  # fmt: skip
    lines = [f"{name} = {value}" for name, value in declared.items()]
    (dist_info / "entry_points.txt").write_text("[airflow.plugins]\n" + "\n".join(lines) + "\n")
    return root


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class PostgresServer:
    """A private PostgreSQL cluster (trust auth on 127.0.0.1 only), run as ``postgres`` when we are root."""

    def __init__(self) -> None:
        bindir = sorted(glob("/usr/lib/postgresql/*/bin"))
        if not bindir:
            raise FileNotFoundError("no /usr/lib/postgresql/*/bin: run scripts/install-services.sh")
        self.bindir = Path(bindir[-1])
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tencent-ci-pg-"))
        self.data = self.root / "data"
        # initdb refuses to run as root; the Debian package creates the `postgres` user.
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(self.root, "postgres")

    def url(self, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/airflow"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.run_as, str(self.bindir / tool), *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w", "-o", options, "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "airflow")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A private redis-server without persistence; ``stop()`` / ``start()`` again keep its port (outage tests)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tencent-ci-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen([*args, "--dir", str(self.root)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait(self.ping, 30, f"redis-server on port {self.port}")

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ProductionServices(AirflowServices):
    """Airflow on PostgreSQL with the CeleryExecutor: API server, scheduler, DAG processor, 2 triggerers, 2 workers.

    Each triggerer reports its component name as its hostname (``tests.production.hostname``), so a test can tell
    from the metadata DB which triggerer runs which trigger.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        postgres: PostgresServer,
        redis_server: RedisServer,
        extra_env: Mapping[str, str] | None = None,
        python_path: tuple[str, ...] = (),
    ) -> None:
        self.postgres = postgres
        self.redis_server = redis_server
        env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), *python_path, os.environ.get("PYTHONPATH")])),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.production.hostname.from_env",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url(),
            "AIRFLOW__CELERY__BROKER_URL": redis_server.url,
            # SQLAlchemy 2.1 needs the driver spelled out in Celery's database result backend URL.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url(),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
            # Every process signs and checks the Execution API's task tokens with the same key.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # A killed triggerer's triggers move to a live one once its heartbeat is this old.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "5",
            **(extra_env or {}),
        }
        super().__init__(home, dags_folder, env)
        # CI calls back the API server's receiver plugin (it publishes to the relay); a test may say otherwise.
        self.callback_receiver_url = f"{self.base_url}/tencent-ci/callbacks"
        if "AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL" not in (extra_env or {}):
            self.env["AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL"] = self.callback_receiver_url
        self.components = ("api-server", "scheduler", "dag-processor", *TRIGGERERS, *WORKERS)

    def component_args(self, component: str) -> list[str]:
        if component in TRIGGERERS:
            return [AIRFLOW, "triggerer", "--skip-serve-logs"]
        if component in WORKERS:
            return [AIRFLOW, "celery", "worker", "--skip-serve-logs", "--without-gossip", "--without-mingle",
                    "--celery-hostname", f"{component}@127.0.0.1"]  # fmt: skip
        return super().component_args(component)

    def component_env(self, component: str) -> dict[str, str]:
        return {**self.env, "TENCENT_CI_TEST_HOSTNAME": component}

    def stop(self) -> None:
        # Ask every component to stop at once, then wait for each: a sequential stop waits for each in turn.
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        super().stop()

    def run_report(self, dag_id: str, run_id: str, lines_per_task: int = 20) -> str:
        """Task states of a run, with the end of each unsuccessful task's log (assertion messages)."""
        report = [f"logs in {self.home}"]
        for task, ti in sorted(self.task_instances(dag_id, run_id).items()):
            report.append(f"{task}: {ti['state']}")
            if ti["state"] != "success":
                folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task}"
                for log in sorted(folder.glob("*.log")):
                    report += log.read_text(errors="replace").splitlines()[-lines_per_task:]
        return "\n".join(report)

    def deferral_exits_processed(self, dag_id: str, run_id: str) -> set[str]:
        """Tasks of a run whose worker exit after ``defer()`` the scheduler has processed (from its log line)."""
        line = re.compile(
            rf"TaskInstance Finished: dag_id={re.escape(dag_id)}, task_id=([^,]+), run_id={re.escape(run_id)}, "
            r"[^\n]*?state=deferred,"
        )
        return set(line.findall(self.log_path("scheduler").read_text(errors="replace")))

    def trigger_event_times(self) -> dict[str, float]:
        """When each job's trigger fired its event (epoch seconds), by job id, from the per-task trigger logs
        (the triggerer's "Trigger fired event" line; the event payload names the job)."""
        fired: dict[str, float] = {}
        for path in self.home.glob("logs/**/*.log.trigger.*.log"):
            for line in path.read_text(errors="replace").splitlines():
                if "Trigger fired event" not in line:
                    continue
                stamp, job = _ISO_STAMP.search(line), _EVENT_JOB_ID.search(line)
                if stamp and job:
                    with contextlib.suppress(ValueError):
                        fired.setdefault(job.group(1), datetime.fromisoformat(stamp.group(0)).timestamp())
        return fired

    def kill(self, component: str) -> None:
        """SIGKILL a component's whole process group: no cleanup, no goodbye heartbeat."""
        self.stop_component(component, signal.SIGKILL)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.postgres.url("postgresql"))) as db, db.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def triggers_by_triggerer(self, dag_id: str, run_id: str) -> dict[str, int]:
        """Deferred task instances of a run, counted by the hostname (component) of the triggerer running them."""
        rows = self.query(
            "SELECT coalesce(j.hostname, ''), count(*) FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id"
            " LEFT JOIN job j ON j.id = t.triggerer_id WHERE ti.dag_id = %s AND ti.run_id = %s"
            " AND ti.state = 'deferred' GROUP BY 1",
            dag_id,
            run_id,
        )
        return {str(host): int(count) for host, count in rows}


@contextlib.contextmanager
def production_deployment(
    home: Path, dags_folder: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[ProductionServices]:
    """The whole deployment; everything it started is stopped and every temporary directory removed on exit."""
    postgres, redis_server = PostgresServer(), RedisServer()
    services: ProductionServices | None = None
    try:
        postgres.start()
        redis_server.start()
        metadata = plugin_entry_point_path(home / "plugin-metadata")
        python_path = (str(metadata),) if metadata else ()
        services = ProductionServices(home, dags_folder, postgres, redis_server, extra_env, python_path)
        services.start()
        yield services
    finally:
        if services is not None:
            services.stop()
        redis_server.remove()
        postgres.stop()
