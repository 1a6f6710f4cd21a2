"""Benchmark 2: callback latency. N jobs wait through ``CIJobCallbackTrigger`` (the per-process callback listener).

Each case runs in a fresh interpreter with its own emulator process:
1. The callback listener's port is chosen; N jobs are created through CreateJob with
   ``CallBack = callback_url(token_for_nonce(nonce_i))`` and held Running.
2. N callback triggers (default fallback poll interval) start through Airflow's ``TriggerRunner``; their initial
   poll completes.
3. The emulator finishes the jobs at ``--rate`` per second; for each job it records the moment its callback
   POST starts. Latency = TriggerEvent yielded by the trigger (recorded around ``run()``) minus that moment.
   Also reported: latency to the event reaching the runner's event queue (after Airflow's own event logging).

Peer: polling (``CIJobTrigger``) at its default poll interval; jobs finish spread evenly over one interval; the
wait from job finished to TriggerEvent is measured and compared with the expectation (interval / 2 on average,
the whole interval at worst).

Usage: bench_callback.py [--n 1000,10000] [--rate 200] [--peer-n 1000] [--peer-interval default]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections import deque
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, int_list, log, machine, percentile, setup_airflow_env

BUCKET = "examplebucket-1250000000"
INPUT_KEY = "in/clip.mp4"


class TimedEvents(deque):  # type: ignore[type-arg]
    """The runner's event queue, time-stamping each event as Airflow appends it."""

    def __init__(self) -> None:
        super().__init__()
        self.times: dict[str, float] = {}

    def append(self, entry: Any) -> None:
        payload = getattr(entry.event, "payload", None)
        if isinstance(payload, dict) and "job_id" in payload:
            self.times.setdefault(payload["job_id"], time.time())
        super().append(entry)


def _instrument_yield(cls: Any, times: dict[str, float]) -> None:
    """Record when a trigger of ``cls`` yields its event (wraps ``run``; the trigger's code is unchanged)."""
    original = cls.run

    async def run(self: Any) -> Any:
        async for event in original(self):
            times.setdefault(self.job_id, time.time())
            yield event

    cls.run = run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _latency_stats(sent: dict[str, float], done: dict[str, float]) -> dict[str, Any]:
    lat = [done[j] - sent[j] for j in done if j in sent]
    return {
        "count": len(lat),
        "p50_ms": _ms(percentile(lat, 50)),
        "p90_ms": _ms(percentile(lat, 90)),
        "p99_ms": _ms(percentile(lat, 99)),
        "max_ms": _ms(max(lat) if lat else None),
        "mean_ms": _ms(sum(lat) / len(lat) if lat else None),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def run_case(mode: str, n: int, rate: float, interval: float | None, finish: int) -> dict[str, Any]:
    setup_airflow_env()
    from cryptography.fernet import Fernet

    os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()
    port = _free_port()
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST"] = "127.0.0.1"
    os.environ["AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT"] = str(port)
    from emuproc import EmulatorProcess
    from jobseed import create_jobs_sync

    from airflow_provider_tencent_ci.triggers import callback_listener

    emu = EmulatorProcess()
    try:
        emu.call("put_object", BUCKET, INPUT_KEY, b"a tiny stand-in for a video")
        emu.call("set_job_timing", 0.0, 3600.0)
        nonces = [callback_listener.new_nonce() for _ in range(n)]
        callback = (
            (lambda i: callback_listener.callback_url(callback_listener.token_for_nonce(nonces[i])))
            if (mode == "callback")
            else None
        )
        ids, seed_s = create_jobs_sync(emu.info, BUCKET, n, INPUT_KEY, callback_for=callback, concurrency=8)
        log(f"{mode} N={n}: {len(ids)} jobs created in {seed_s:.1f}s")
        emu.export_connection()
        return asyncio.run(_measure(emu, mode, ids, nonces, rate, interval, seed_s, finish))
    finally:
        emu.stop()


async def _measure(
    emu: Any,
    mode: str,
    ids: list[str],
    nonces: list[str],
    rate: float,
    interval: float | None,
    seed_s: float,
    finish: int,
) -> dict[str, Any]:
    from triggerer import Watchdog, encrypted_workloads, failed_tasks, new_runner, start_triggers, stop_triggers

    from airflow_provider_tencent_ci.triggers import callback_listener
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger, CIJobTrigger

    n = len(ids)

    async def ecall(*a: Any) -> Any:
        return await asyncio.to_thread(emu.call, *a)

    yielded: dict[str, float] = {}
    cls = CIJobCallbackTrigger if mode == "callback" else CIJobTrigger
    _instrument_yield(cls, yielded)
    if mode == "callback":
        triggers = [
            CIJobCallbackTrigger(job_id=j, bucket=BUCKET, callback_nonce=c) for j, c in zip(ids, nonces, strict=True)
        ]
    else:
        kw = {} if interval is None else {"poll_interval": interval}
        triggers = [CIJobTrigger(job_id=j, bucket=BUCKET, **kw) for j in ids]
    poll_interval = triggers[0].poll_interval
    workloads = encrypted_workloads(triggers)
    del triggers
    runner = new_runner()
    runner.events = TimedEvents()
    watchdog = Watchdog()
    watchdog.start()
    await ecall("stats_reset")
    watchdog.set_phase("create")
    create_s = await start_triggers(runner, workloads)
    del workloads

    # Wait for the initial polls to settle so they do not overlap the measurement. (Triggers that subscribe while
    # the poller is between cycles wait for its next tick, the 300 s fallback interval: not all N are polled now.)
    watchdog.set_phase("initial_poll")
    t0 = time.perf_counter()
    last, stable_since = -1, time.perf_counter()
    while time.perf_counter() - t0 < 120:
        count = await ecall("stats_count", "DescribeJobs")
        if count != last:
            last, stable_since = count, time.perf_counter()
        elif time.perf_counter() - stable_since > 1.0:
            break
        await asyncio.sleep(0.1)
    initial_poll_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "mode": mode,
        "n": n,
        "poll_interval_s": poll_interval,
        "seed_jobs_s": round(seed_s, 2),
        "create_triggers_s": round(create_s, 3),
        "initial_poll_s": round(initial_poll_s, 3),
        "initial_poll_requests": last,
    }
    if mode == "callback":
        listener = callback_listener.get_listener()
        result["listener_registrations"] = sum(len(r) for r in listener._registrations.values())

    watchdog.set_phase("finish")
    await ecall("stats_reset")
    # Callbacks: the jobs finish at `rate` per second. Polling peer: spread evenly over one poll interval.
    # Only the first `finish` jobs end (the others keep waiting: N is the number of waiting triggers).
    finishing = ids[: min(n, finish)] if finish > 0 else ids
    finish_rate = rate if mode == "callback" else len(finishing) / poll_interval
    result["finished_jobs"] = len(finishing)
    result["finish_rate_per_s"] = round(finish_rate, 1)
    t_finish = time.perf_counter()
    forced: dict[str, float] = await ecall("finish_jobs", finishing, finish_rate)
    finish_s = time.perf_counter() - t_finish
    deadline = time.monotonic() + (60 if mode == "callback" else poll_interval * 2 + 30)
    while len(yielded) < len(finishing) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    result["finish_jobs_s"] = round(finish_s, 2)
    result["events"] = len(yielded)
    result["all_delivered"] = len(yielded) >= len(finishing)
    if mode == "callback":
        sent: dict[str, float] = await ecall("callback_times")
        result["callbacks_sent"] = len(sent)
        result["callback_summary"] = await ecall("callback_summary")
        result["latency_yield"] = _latency_stats(sent, yielded)
        result["latency_runner_queue"] = _latency_stats(sent, runner.events.times)
        result["confirm_requests"] = await ecall("stats_count", "DescribeJobs")
        result["listener_responses"] = dict(callback_listener.get_listener().responses)
    else:
        result["expected_wait_s"] = {
            "mean": poll_interval / 2,
            "p50": poll_interval / 2,
            "p99": round(poll_interval * 0.99, 2),
            "max": poll_interval,
        }
        result["latency_yield"] = _latency_stats(forced, yielded)
        result["poll_requests_during_finish"] = await ecall("stats_count", "DescribeJobs")
    errors = failed_tasks(runner)
    result["trigger_error_count"] = len(errors)
    result["trigger_errors"] = errors[:5]
    await watchdog.stop()
    result.update(watchdog.report(("create", "initial_poll", "finish")))
    await stop_triggers(runner)
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", default=os.environ.get("BENCH_CALLBACK_N", "1000,10000"))
    p.add_argument("--rate", type=float, default=float(os.environ.get("BENCH_CALLBACK_RATE", "100")))
    p.add_argument("--peer-n", default=os.environ.get("BENCH_CALLBACK_PEER_N", "1000"))
    p.add_argument("--peer-interval", default=os.environ.get("BENCH_CALLBACK_PEER_INTERVAL", "default"))
    p.add_argument(
        "--finish",
        type=int,
        default=int(os.environ.get("BENCH_CALLBACK_FINISH", "2000")),
        help="how many of the N waiting jobs finish during the measurement (0: all)",
    )
    p.add_argument(
        "--capacity-rates",
        default=os.environ.get("BENCH_CALLBACK_CAPACITY_RATES", "300"),
        help="extra N=1,000 runs at these callback rates, to show where the process saturates",
    )
    p.add_argument("--case", default=None, help="internal: mode:n:rate")
    args = p.parse_args()
    peer_interval = None if args.peer_interval == "default" else float(args.peer_interval)
    if args.case:
        mode, n, rate = args.case.split(":")
        emit(run_case(mode, int(n), float(rate), peer_interval, args.finish))
        return
    rows = []
    cases = [("callback", n, args.rate) for n in int_list(args.n)]
    cases += [("callback", 1000, float(r)) for r in int_list(args.capacity_rates)]
    cases += [("polling", n, 0.0) for n in int_list(args.peer_n)]
    for mode, n, rate in cases:
        log(f"bench 2: {mode} N={n} rate={rate}")
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--case",
            f"{mode}:{n}:{rate}",
            "--peer-interval",
            args.peer_interval,
            "--finish",
            str(args.finish),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=900)
        row: dict[str, Any] = {
            "mode": mode,
            "n": n,
            "rate": rate,
            "error": f"exit {proc.returncode}",
            "stdout_tail": proc.stdout[-2000:],
        }
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("BENCH-RESULT "):
                row = json.loads(line[len("BENCH-RESULT ") :])
                break
        row["case_wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
    emit({"benchmark": "callback", "rate_per_s": args.rate, "finish": args.finish, "rows": rows, "machine": machine()})


if __name__ == "__main__":
    main()
