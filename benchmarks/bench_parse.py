"""Benchmark 4: DAG-parse cost of the provider, against the Amazon provider's S3 and Glue, in the same run.

Each measurement is a fresh interpreter running ``parse_probe.py``: it loads a bare Airflow DAG file, then the DAG
file under test, each the way the DAG processor loads a file, and reports the second load's wall and CPU time:
the DAG file's cost beyond a bare DAG file. Runs alternate between the two providers; the median is reported.

Environments: ours in the project's ``.venv`` (Airflow + this provider); Amazon's in a separate environment with
the same Airflow and apache-airflow-providers-amazon (never installed in .venv; ``make bench`` builds it). Not the
same environment on purpose: with the Amazon provider installed, any DAG that declares an Asset makes Airflow
import Amazon's asset handlers (boto3, botocore) whatever provider the DAG uses.

Usage: bench_parse.py --amazon-python PATH [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BENCH_DIR, emit, log, machine

DAGS = BENCH_DIR / "dags"
PROBE = BENCH_DIR / "parse_probe.py"


def _probe(python: str, dag: str, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, str(PROBE), str(DAGS / "bare_dag.py"), str(DAGS / dag)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {dag}: exit {proc.returncode}: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = time.perf_counter() - t0
    return out


def _version(python: str, dist: str) -> str | None:
    proc = subprocess.run(
        [python, "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc.stdout.strip() or None


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str, part: str) -> float:
        return round(statistics.median(r[part][key] for r in runs) * 1000, 1)

    last = runs[-1]
    return {
        "runs": len(runs),
        "dag_wall_ms_median": med("wall", "dag"),
        "dag_cpu_ms_median": med("cpu", "dag"),
        "dag_wall_ms_all": [round(r["dag"]["wall"] * 1000, 1) for r in runs],
        "dag_cpu_ms_all": [round(r["dag"]["cpu"] * 1000, 1) for r in runs],
        "bare_wall_ms_median": med("wall", "bare"),
        "bare_cpu_ms_median": med("cpu", "bare"),
        "process_wall_s_median": round(statistics.median(r["process_wall"] for r in runs), 2),
        "dag_modules_loaded": last["dag"]["modules_loaded"],
        "dag_watched_modules_imported": last["dag"]["watched"],
        "bare_watched_modules_imported": last["bare"]["watched"],
        "provider_modules": last["dag"]["provider_modules"],
        "amazon_modules": last["dag"]["amazon_modules"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_PARSE_RUNS", "7")))
    p.add_argument("--ours-python", default=sys.executable)
    p.add_argument("--amazon-python", default=os.environ.get("BENCH_AMAZON_PYTHON", ""))
    args = p.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    import tempfile

    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="tencent-ci-bench-parse-")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    have_amazon = bool(args.amazon_python) and os.path.exists(args.amazon_python)
    # Warm-up: one discarded run each (byte-code compilation, file cache).
    _probe(args.ours_python, "tencent_dag.py", env)
    if have_amazon:
        _probe(args.amazon_python, "amazon_dag.py", env)
    ours: list[dict[str, Any]] = []
    amazon: list[dict[str, Any]] = []
    for i in range(args.runs):
        ours.append(_probe(args.ours_python, "tencent_dag.py", env))
        if have_amazon:
            amazon.append(_probe(args.amazon_python, "amazon_dag.py", env))
        log(
            f"bench 4: run {i + 1}/{args.runs}: ours {ours[-1]['dag']['cpu'] * 1000:.0f} ms CPU"
            + (f", amazon {amazon[-1]['dag']['cpu'] * 1000:.0f} ms CPU" if have_amazon else "")
        )
    result: dict[str, Any] = {
        "benchmark": "parse",
        "ours": _summary(ours),
        "ours_versions": {
            "apache-airflow": _version(args.ours_python, "apache-airflow"),
            "airflow-provider-tencent-ci": _version(args.ours_python, "airflow-provider-tencent-ci"),
        },
        "machine": machine(),
    }
    if have_amazon:
        result["amazon"] = _summary(amazon)
        result["amazon_versions"] = {
            "apache-airflow": _version(args.amazon_python, "apache-airflow"),
            "apache-airflow-providers-amazon": _version(args.amazon_python, "apache-airflow-providers-amazon"),
            "boto3": _version(args.amazon_python, "boto3"),
        }
        result["ratio_cpu"] = round(result["ours"]["dag_cpu_ms_median"] / result["amazon"]["dag_cpu_ms_median"], 3)
        result["ratio_wall"] = round(result["ours"]["dag_wall_ms_median"] / result["amazon"]["dag_wall_ms_median"], 3)
    else:
        result["amazon_missing"] = f"no Amazon benchmark environment at {args.amazon_python!r}"
    emit(result)


if __name__ == "__main__":
    main()
