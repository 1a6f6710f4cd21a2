"""Shared plumbing of the benchmarks: machine facts, statistics, result files, a private Airflow home.

Every benchmark is a script that runs in its own interpreter (started by ``run_all.py``) and prints one JSON
document on its last stdout line; ``run_all.py`` collects them into ``benchmarks/results.json`` and
``BENCHMARKS.md``. Benchmarks are not tests: they print figures and never run under pytest.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
RESULT_MARK = "BENCH-RESULT "


def setup_airflow_env() -> Path:
    """A private Airflow home (no metadata DB is needed: nothing here touches it) and loopback-only networking.

    Must run before anything imports airflow: Airflow reads its configuration at import time.
    """
    home = Path(tempfile.mkdtemp(prefix="tencent-ci-bench-airflow-"))
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(home / "dags")
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        os.environ.pop(var, None)
    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
        os.environ.pop(var, None)
    return home


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS and Python: the context every figure needs."""
    mem_total = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "cpu_model": cpu_model,
        "memory_bytes": mem_total,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (no interpolation: a p99 is a latency that really happened)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100.0 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's result as the last stdout line, for run_all.py."""
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def int_list(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
