"""Run every benchmark against the emulator and write BENCHMARKS.md and benchmarks/results.json.

    make bench                       # what CI and the README call
    .venv/bin/python benchmarks/run_all.py --amazon-python .venv-bench/bin/python [--only parse,batch]
    .venv/bin/python benchmarks/run_all.py --report-only

With ``--only``, the results of the benchmarks not run are carried over from the existing results file, each
with the date of the run that measured it; the report says which sections come from which run. With
``--report-only`` nothing runs: the report is rewritten from the results file (and the hand-written notes in
``benchmarks/notes/``, see report.py); ``--report-only --only fanin,events --take-from other/results.json`` first
copies those benchmarks' results from another results file (another branch's run), each with its run's date.

Each benchmark runs in its own interpreter (and each of its cases in a fresh one): figures never share a heap,
an event loop or an emulator. Sizes are configurable through the benchmarks' options / BENCH_* variables (see
each script's docstring); the report states the sizes that were run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import BENCH_DIR, RESULT_MARK, ROOT, log, machine
from report import write_report

ORDER = ("parse", "batch", "fanin", "callback", "ratelimit", "events", "bigbatch")
SCRIPTS = {
    "parse": "bench_parse.py",
    "batch": "bench_batch.py",
    "fanin": "bench_fanin.py",
    "callback": "bench_callback.py",
    "ratelimit": "bench_ratelimit.py",
    "events": "bench_events.py",
    "bigbatch": "bench_bigbatch.py",
}


def run_one(name: str, extra: list[str], log_dir: str) -> dict[str, Any]:
    script = BENCH_DIR / SCRIPTS[name]
    log_path = os.path.join(log_dir, f"{name}.log")
    cmd = [sys.executable, str(script), *extra]
    log(f"== {name}: {' '.join(cmd[1:])} (log: {log_path})")
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            result["wall_s"] = round(wall, 1)
            log(f"== {name}: done in {wall:.0f}s")
            return result
    with open(log_path, encoding="utf-8") as fh:
        tail = fh.read()[-3000:]
    log(f"== {name}: FAILED (exit {proc.returncode}); stderr tail:\n{tail}")
    return {"benchmark": name, "error": f"exit {proc.returncode}", "stderr_tail": tail, "wall_s": round(wall, 1)}


def _taken(path: str, names: list[str]) -> dict[str, Any]:
    """The results of ``names`` from another results file (another branch's run), stamped with the run that
    measured them."""
    with open(path, encoding="utf-8") as fh:
        other = json.load(fh)
    taken = {}
    for name in names:
        result = (other.get("benchmarks") or {}).get(name)
        if not isinstance(result, dict):
            raise SystemExit(f"{path} has no results of {name}")
        result.setdefault("run_date_utc", other.get("date_utc"))
        result.setdefault("run_command", other.get("command"))
        result.setdefault("run_machine", other.get("machine"))
        taken[name] = result
    return taken


def _carried_over(path: str, run: list[str]) -> dict[str, Any]:
    """The previous results of the benchmarks not run this time, each stamped with the run that measured it."""
    try:
        with open(path, encoding="utf-8") as fh:
            previous = json.load(fh)
    except (OSError, ValueError):
        return {}
    kept = {}
    for name in ORDER:
        result = (previous.get("benchmarks") or {}).get(name)
        if name in run or not isinstance(result, dict):
            continue
        result.setdefault("run_date_utc", previous.get("date_utc"))
        result.setdefault("run_command", previous.get("command"))
        result.setdefault("run_machine", previous.get("machine"))
        kept[name] = result
    return kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default="", help="comma list of " + ",".join(ORDER))
    default_amazon = os.environ.get("BENCH_AMAZON_PYTHON", str(ROOT / ".venv-bench/bin/python"))
    p.add_argument("--amazon-python", default=default_amazon)
    p.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--json", default=str(BENCH_DIR / "results.json"))
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rewrite the report from the results file and benchmarks/notes/",
    )
    p.add_argument(
        "--take-from",
        default="",
        help="with --report-only and --only: first copy those benchmarks' results from this results file (e.g. "
        "another branch's run) into the results file",
    )
    args = p.parse_args()
    if args.report_only:
        with open(args.json, encoding="utf-8") as fh:
            doc = json.load(fh)
        if args.take_from:
            doc["benchmarks"].update(_taken(args.take_from, [n for n in args.only.split(",") if n]))
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, default=str)
                fh.write("\n")
        write_report(doc, args.output)
        log(f"wrote {args.output} from {args.json}")
        return
    names = [n for n in ORDER if not args.only or n in args.only.split(",")]
    log_dir = tempfile.mkdtemp(prefix="tencent-ci-bench-logs-")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name in names:
        extra = ["--amazon-python", args.amazon_python] if name == "parse" else []
        results[name] = run_one(name, extra, log_dir)
        results[name]["run_date_utc"] = started.isoformat(timespec="seconds")
    if args.only:
        results = {**_carried_over(args.json, names), **results}
    total = time.perf_counter() - t0
    command = (
        "make bench" if os.environ.get("MAKELEVEL") else " ".join([os.path.relpath(sys.executable, ROOT), *sys.argv])
    )
    doc = {
        "date_utc": started.isoformat(timespec="seconds"),
        "command": command,
        "total_wall_s": round(total, 1),
        "machine": machine(),
        "environment": {k: v for k, v in os.environ.items() if k.startswith("BENCH_")},
        "logs": log_dir,
        "benchmarks": results,
    }
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, default=str)
        fh.write("\n")
    write_report(doc, args.output)
    log(f"wrote {args.output} and {args.json} in {total:.0f}s (logs in {log_dir})")


if __name__ == "__main__":
    main()
