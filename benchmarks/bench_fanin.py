"""Benchmark 1: triggerer fan-in. N SegmentVideoBody jobs waiting in one asyncio loop.

Ours: ``CIJobTrigger`` (coalesced polling through ``triggers/poller.py``). Peer: ``OneJobPollingTrigger``
(benchmarks/peer_triggers.py: one request per job per poll, the usual provider pattern, same hook and client).
Both run through Airflow's own ``TriggerRunner.create_triggers`` (classpath import + encrypted kwargs).

Each case (mode, N) runs in a fresh interpreter with its own emulator process:
1. N jobs are created through the CreateJob API and held Running (emulator job timing: run 1 h).
2. The N triggers are started; the first poll cycle completes (every trigger has had its first answer).
3. Memory: RSS after the first cycle minus RSS before the triggers existed (warm client), divided by N.
4. Steady state: DescribeJobs requests counted by the emulator over whole poll cycles.
5. The emulator finishes every job (job timing 0); time until all N TriggerEvents were yielded.
A watchdog coroutine records the longest event-loop stall in each phase.

Usage: bench_fanin.py [--n 1000,10000] [--interval 5] [--cycles 3] [--peer-n 1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, int_list, log, machine, rss_bytes, setup_airflow_env

BUCKET = "examplebucket-1250000000"
INPUT_KEY = "in/clip.mp4"


async def _wait_for(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(step)
    return False


def run_case(mode: str, n: int, interval: float, cycles: int) -> dict[str, Any]:
    setup_airflow_env()
    from cryptography.fernet import Fernet

    os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    from emuproc import EmulatorProcess
    from jobseed import create_jobs_sync

    emu = EmulatorProcess()
    try:
        emu.call("put_object", BUCKET, INPUT_KEY, b"a tiny stand-in for a video")
        emu.call("set_job_timing", 0.0, 3600.0)
        if mode == "idle":
            ids, seed_s = [f"idle-{i}" for i in range(n)], 0.0
        else:
            ids, seed_s = create_jobs_sync(emu.info, BUCKET, n, INPUT_KEY, concurrency=8)
        log(f"{mode} N={n}: {len(ids)} jobs created in {seed_s:.1f}s")
        emu.export_connection()
        return asyncio.run(_measure(emu, mode, ids, interval, cycles, seed_s))
    finally:
        emu.stop()


async def _measure(emu: Any, mode: str, ids: list[str], interval: float, cycles: int, seed_s: float) -> dict[str, Any]:
    from peer_triggers import IdleTrigger, OneJobPollingTrigger
    from triggerer import Watchdog, encrypted_workloads, failed_tasks, new_runner, start_triggers, stop_triggers

    from airflow_provider_tencent_ci.hooks.ci import CIHook
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobTrigger
    from airflow_provider_tencent_ci.triggers.poller import pollers_for_current_loop

    n = len(ids)

    async def ecall(*a: Any) -> Any:  # never block the loop on the pipe to the emulator
        return await asyncio.to_thread(emu.call, *a)

    partial_path = os.environ.get("BENCH_PARTIAL_FILE")
    stop_monitor = threading.Event()

    # Warm up imports, the connection and one HTTP client so the memory figure is the triggers' own.
    if mode != "idle":
        warm = CIHook()
        await warm.aget_jobs(BUCKET, ids[:1])
        await warm.aclose()
    triggers: list[Any]
    if mode == "ours":
        triggers = [CIJobTrigger(job_id=j, bucket=BUCKET, poll_interval=interval) for j in ids]
    elif mode == "peer":
        triggers = [
            OneJobPollingTrigger(job_id=j, bucket=BUCKET, poll_interval=interval, initial_delay=interval * i / n)
            for i, j in enumerate(ids)
        ]
    else:
        triggers = [IdleTrigger(job_id=j) for j in ids]
    workloads = encrypted_workloads(triggers)
    del triggers
    runner = new_runner()
    watchdog = Watchdog()
    watchdog.start()
    watchdog.set_phase("setup")
    result: dict[str, Any] = {"mode": mode, "n": n, "poll_interval_s": interval, "seed_jobs_s": round(seed_s, 2)}
    if partial_path:
        # A saturated loop may never reach the next phase: a thread keeps the figures so far on disk, so the
        # parent can report them if it has to stop this case.
        threading.Thread(
            target=_monitor, args=(partial_path, result, watchdog, runner, emu, stop_monitor), daemon=True
        ).start()
    await asyncio.sleep(0.1)
    trace = bool(os.environ.get("BENCH_TRACEMALLOC"))  # diagnostics: which lines hold the memory
    if trace:
        import tracemalloc

        tracemalloc.start(1)
    gc.collect()
    rss0 = rss_bytes()
    types0 = _type_counts()
    snap0 = tracemalloc.take_snapshot() if trace else None
    await ecall("stats_reset")

    watchdog.set_phase("create")
    if os.environ.get("BENCH_PROFILE_CREATE"):  # diagnostics: where does trigger creation spend its time?
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        create_s = await start_triggers(runner, workloads)
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        create_s = await start_triggers(runner, workloads)
    del workloads
    watchdog.set_phase("first_cycle")
    t_first = time.perf_counter()
    mark: dict[str, int] = {}

    async def first_cycle_done() -> bool:
        """Every trigger has had one answer: a whole cycle ran after the last trigger subscribed."""
        if mode == "idle":
            return True
        if mode == "peer":
            return bool(await ecall("stats_count", "DescribeJobs") >= n)  # spread over the first interval
        pollers = list(pollers_for_current_loop().values())
        if not pollers or sum(p.subscriber_count for p in pollers) < n:
            return False
        p = pollers[0]
        if "cycles" not in mark:
            mark["cycles"], mark["requests"] = p.cycles, p.requests
            return False
        if p.cycles <= mark["cycles"]:
            return False  # wait for a cycle that starts with every trigger subscribed
        target = mark["requests"] + -(-n // p.batch_size)
        return bool(p.requests >= target and await ecall("stats_count", "DescribeJobs") >= target)

    ok = await _wait_for(first_cycle_done, timeout=interval * 4 + 120, step=0.1)
    first_cycle_s = time.perf_counter() - t_first
    await asyncio.sleep(0.5)  # let the last answers be delivered
    watchdog.set_phase("measure_memory")
    gc.collect()
    rss1 = rss_bytes()
    types1 = _type_counts()
    if trace:
        snap1 = tracemalloc.take_snapshot()
        stats = snap1.compare_to(snap0, "lineno")
        total = sum(st.size_diff for st in stats)
        log(f"tracemalloc: {total / n:.0f} B per trigger")
        for st in stats[:25]:
            log(f"  {st.size_diff / n:8.1f} B/trigger  {st.count_diff / n:6.2f} blocks  {st.traceback}")
    errors = failed_tasks(runner)
    result.update(
        {
            "create_triggers_s": round(create_s, 3),
            "first_cycle_s": round(first_cycle_s, 3),
            "first_cycle_complete": ok,
            "rss_before_mb": round(rss0 / 2**20, 1),
            "rss_waiting_mb": round(rss1 / 2**20, 1),
            "memory_per_trigger_kb": round((rss1 - rss0) / n / 1024, 2),
            # Objects the garbage collector tracks: every full collection walks all of them (the stall figures).
            "gc_objects_per_trigger": round((sum(types1.values()) - sum(types0.values())) / n, 1),
            "gc_objects_top_types_per_trigger": {
                t: round((types1[t] - types0.get(t, 0)) / n, 2)
                for t in sorted(types1, key=lambda t: types0.get(t, 0) - types1[t])[:10]
            },
        }
    )
    if mode == "idle":
        stop_monitor.set()
        await watchdog.stop()
        result.update(watchdog.report(("create", "first_cycle")))
        await stop_triggers(runner)
        return result

    # The measurement above (a full collection, a walk over every object) ran without yielding: let the watchdog
    # wake now, so the stall it caused is booked to measure_memory (not reported) and not to the steady phase.
    await asyncio.sleep(watchdog.tick * 2)
    # Steady state: count the requests the emulator received over whole poll cycles.
    watchdog.set_phase("steady")
    if mode == "ours":
        pollers = list(pollers_for_current_loop().values())
        poller = pollers[0]
        result["pollers"] = len(pollers)
        result["batch_size"] = poller.batch_size

        async def idle_point() -> tuple[int, int, float] | None:
            """(emulator count, poller cycles, time) at a moment the poller is between cycles: every request
            it sent has reached the emulator and nothing changed for 100 ms."""
            a = (await ecall("stats_count", "DescribeJobs"), poller.requests, poller.cycles)
            await asyncio.sleep(0.1)
            b = (await ecall("stats_count", "DescribeJobs"), poller.requests, poller.cycles)
            if a == b and b[0] == b[1]:
                return b[0], b[2], time.perf_counter()
            return None

        async def wait_idle(timeout: float) -> tuple[tuple[int, int, float], bool]:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                point = await idle_point()
                if point is not None:
                    return point, True
            return (await ecall("stats_count", "DescribeJobs"), poller.cycles, time.perf_counter()), False

        (c0, k0, t0), idle0 = await wait_idle(interval * 3)
        await asyncio.sleep(interval * cycles)
        (c1, k1, t1), idle1 = await wait_idle(interval * 3)
        done = max(1, k1 - k0)
        result["steady_cycles"] = k1 - k0
        result["steady_window_aligned"] = idle0 and idle1
        result["requests_per_cycle"] = round((c1 - c0) / done, 1)
        result["cycles_per_interval"] = round((k1 - k0) / ((t1 - t0) / interval), 2)
        result["requests_per_interval"] = round((c1 - c0) / ((t1 - t0) / interval), 1)
        result["cycle_s"] = round((t1 - t0) / done, 3)
    else:
        c0, t0 = await ecall("stats_count", "DescribeJobs"), time.perf_counter()
        await asyncio.sleep(interval * cycles)
        c1, t1 = await ecall("stats_count", "DescribeJobs"), time.perf_counter()
        intervals = (t1 - t0) / interval
        result["steady_cycles"] = round(intervals, 2)
        # Each trigger polls once per (interval + its own request time): per poll interval, up to N requests.
        result["requests_per_cycle"] = round((c1 - c0) / intervals, 1)
        result["requests_per_interval"] = result["requests_per_cycle"]
        result["cycle_s"] = round(interval, 3)
    result["requests_per_s"] = round((c1 - c0) / (t1 - t0), 1)

    # Completion: the emulator finishes every job now; all N events must be yielded.
    watchdog.set_phase("finish")
    t_fin = time.perf_counter()
    await ecall("set_job_timing", 0.0, 0.0)
    # Every trigger needs one more poll to see its job finished: allow three intervals plus slack.
    delivered = await _wait_for(lambda: _true(len(runner.events) >= n), timeout=interval * 3 + 60, step=0.05)
    result["all_events_s"] = round(time.perf_counter() - t_fin, 3)
    result["events"] = len(runner.events)
    result["events_success"] = sum(
        1 for e in runner.events if isinstance(e.event.payload, dict) and e.event.payload.get("status") == "success"
    )
    result["all_delivered"] = delivered
    errors += failed_tasks(runner)
    result["trigger_errors"] = errors[:5]
    result["trigger_error_count"] = len(errors)
    stop_monitor.set()
    await watchdog.stop()
    result.update(watchdog.report(("create", "first_cycle", "steady", "finish")))
    await stop_triggers(runner)
    return result


def _monitor(path: str, result: dict[str, Any], watchdog: Any, runner: Any, emu: Any, stop: threading.Event) -> None:
    t0 = time.monotonic()
    while not stop.wait(1.0):
        try:
            snapshot = dict(result)
            snapshot.update(watchdog.report(("create", "first_cycle", "steady", "finish")))
            snapshot["events_so_far"] = len(runner.events)
            snapshot["describe_jobs_so_far"] = emu.call("stats_count", "DescribeJobs")
            snapshot["phase_at_stop"] = watchdog.phase
            snapshot["seconds_in_case"] = round(time.monotonic() - t0, 1)
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(snapshot, fh, default=str)
            os.replace(tmp, path)
        except Exception:  # diagnostics only: never disturb the measurement
            continue


def _type_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = type(obj).__qualname__
        counts[name] = counts.get(name, 0) + 1
    return counts


async def _true(value: bool) -> bool:
    return value


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default=os.environ.get("BENCH_FANIN_N", "1000,10000"))
    p.add_argument("--peer-n", default=os.environ.get("BENCH_FANIN_PEER_N", ""))
    p.add_argument("--interval", type=float, default=float(os.environ.get("BENCH_FANIN_INTERVAL", "5")))
    p.add_argument("--cycles", type=int, default=int(os.environ.get("BENCH_FANIN_CYCLES", "2")))
    p.add_argument(
        "--case-timeout",
        type=float,
        default=float(os.environ.get("BENCH_FANIN_CASE_TIMEOUT", "150")),
        help="seconds a case may take (a peer that saturates its loop is stopped and reported as such)",
    )
    p.add_argument("--case", default=None, help="internal: mode:n")
    args = p.parse_args()
    if args.case:
        mode, n = args.case.split(":")
        emit(run_case(mode, int(n), args.interval, args.cycles))
        return
    ns = int_list(args.n)
    peer_ns = int_list(args.peer_n) if args.peer_n else ns
    cases = [("ours", n) for n in ns] + [("peer", n) for n in peer_ns] + [("idle", max(ns))]
    rows = []
    for mode, n in cases:
        log(f"bench 1: {mode} N={n}")
        timeout = args.case_timeout if mode == "peer" else max(args.case_timeout, 480)
        rows.append(_subprocess_case(mode, n, args.interval, args.cycles, timeout))
    emit({"benchmark": "fanin", "interval_s": args.interval, "cycles": args.cycles, "rows": rows, "machine": machine()})


def _subprocess_case(mode: str, n: int, interval: float, cycles: int, timeout: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--case",
        f"{mode}:{n}",
        "--interval",
        str(interval),
        "--cycles",
        str(cycles),
    ]
    partial = os.path.join(tempfile.mkdtemp(prefix="bench-fanin-"), "partial.json")
    env = dict(os.environ, BENCH_PARTIAL_FILE=partial)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        # The case could not finish in its time budget (a saturated event loop): report what it measured so far.
        row: dict[str, Any] = {"mode": mode, "n": n}
        if os.path.exists(partial):
            with open(partial, encoding="utf-8") as fh:
                row = json.load(fh)
        row["incomplete"] = f"stopped after {timeout:.0f} s in phase {row.get('phase_at_stop', '?')}"
        row["case_wall_s"] = round(time.perf_counter() - t0, 1)
        return row
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            row = json.loads(line[len("BENCH-RESULT ") :])
            row["case_wall_s"] = round(time.perf_counter() - t0, 1)
            return row
    return {"mode": mode, "n": n, "error": f"exit {proc.returncode}", "stdout_tail": proc.stdout[-2000:]}


if __name__ == "__main__":
    main()
