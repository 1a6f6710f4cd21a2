"""Load DAG files in this (fresh) interpreter the way the DAG processor does, and print what each cost.

Usage: python parse_probe.py BARE_DAG [DAG]. Loads BARE_DAG (a DAG file with no provider import), then DAG, each
as the DAG processor does (a module executed from its file), and prints one JSON line: wall and CPU seconds of
each load, the number of modules each imported, and which SDK / HTTP / image modules each pulled in.

The DAG's own figures are its cost *beyond* a bare DAG file, measured in the same interpreter: the 3-5 s that
importing Airflow itself takes (and its noise on a shared machine) do not enter them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from typing import Any

# Modules a DAG file should not need at parse time: the clouds' SDKs, the image library, HTTP clients.
WATCHED = (
    "qcloud_cos",
    "tencentcloud",
    "PIL",
    "httpx",
    "requests",
    "urllib3",
    "defusedxml",
    "xmltodict",
    "boto3",
    "botocore",
    "aiobotocore",
)


def load(path: str, name: str) -> dict[str, Any]:
    before = set(sys.modules)
    w0, c0 = time.perf_counter(), time.process_time()
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    loaded = sorted(set(sys.modules) - before)
    return {
        "wall": wall,
        "cpu": cpu,
        "modules_loaded": len(loaded),
        "watched": sorted({m.split(".")[0] for m in loaded if m.split(".")[0] in WATCHED}),
        "provider_modules": [m for m in loaded if m.startswith("airflow_provider_tencent_ci")],
        "amazon_modules": sum(1 for m in loaded if m.startswith("airflow.providers.amazon")),
    }


def main() -> None:
    out: dict[str, Any] = {"bare": load(sys.argv[1], "bench_bare_dag")}
    if len(sys.argv) > 2:
        out["dag"] = load(sys.argv[2], "bench_dag")
    out["watched_total"] = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in WATCHED})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
