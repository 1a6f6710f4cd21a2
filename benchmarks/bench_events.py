"""Benchmark 6: the job-event trigger under load (issue 16, item 4).

``--jobs`` SegmentVideoBody jobs are created in the emulator (real CreateJob calls, ``jobseed.py``) and kept
running; then they are forced to Success evenly over ``--finish-seconds`` (1,000 within one minute by default).
Watching them in one asyncio loop, started before the first job ends:

- **ours**: one ``CIJobEventTrigger`` on the bucket (list polling every ``--interval`` seconds; no callback
  channel). The trigger may put several jobs in one event: jobs are counted across the events it yields (an event's
  ``jobs`` list, or its single ``job_id``).
- **peer**: one ``CIJobTrigger`` per job (the per-job wait a deferrable sensor uses, same interval; its polls share
  the provider's coalescing poller).

Figures: for ours, jobs reported exactly once (missing, duplicated), ListJobs requests per poll cycle (the
emulator's counter sampled every 0.2 s, cycles separated by idle gaps), event lag = the moment the trigger yields
the event minus the moment the emulator ended the job (epoch seconds in both processes; CI's EndTime has one-second
resolution), p50/p99/max, against the target: within one poll interval; for the peer, DescribeJobs per cycle and
its lag.

Usage: bench_events.py [--jobs 1000] [--finish-seconds 60] [--interval 10]
(BENCH_EVENTS_JOBS, BENCH_EVENTS_FINISH_SECONDS, BENCH_EVENTS_INTERVAL.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, log, machine, percentile, setup_airflow_env

BUCKET = "examplebucket-1250000000"
INPUT_KEY = "in/clip.mp4"


def job_ids_of(payload: Any) -> list[str]:
    """The JobIds an event reports: a batch (``jobs``: a list of job documents) or one job (``job_id``)."""
    if not isinstance(payload, dict):
        return []
    jobs = payload.get("jobs")
    if isinstance(jobs, list):
        ids = []
        for job in jobs:
            if isinstance(job, dict):
                job_id = job.get("job_id") or job.get("JobId") or (job.get("job") or {}).get("JobId")
                if job_id:
                    ids.append(str(job_id))
        return ids
    return [str(payload["job_id"])] if payload.get("job_id") else []


class _Counter:
    """Samples the emulator's request counters for ``ops`` every ``period`` s (a thread: the pipe is blocking)."""

    def __init__(self, emu: Any, ops: tuple[str, ...], period: float = 0.2) -> None:
        self.emu, self.ops, self.period = emu, ops, period
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-counter", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), {op: self.emu.call("stats_count", op) for op in self.ops}))
            self._stop.wait(self.period)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cycles(self, op: str, gap: float) -> list[int]:
        """Requests of ``op`` per burst: increments separated by at least ``gap`` seconds without any."""
        bursts: list[int] = []
        last_change = None
        prev = self.samples[0][1][op] if self.samples else 0
        for t, counts in self.samples[1:]:
            delta = counts[op] - prev
            prev = counts[op]
            if delta <= 0:
                continue
            if last_change is None or t - last_change >= gap:
                bursts.append(0)
            bursts[-1] += delta
            last_change = t
        return bursts


async def _measure(emu: Any, ids: list[str], interval: float, finish_seconds: float) -> dict[str, Any]:
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobEventTrigger, CIJobTrigger

    ours_events: list[tuple[float, list[str]]] = []
    peer_events: dict[str, float] = {}
    ours = CIJobEventTrigger(bucket=BUCKET, poll_interval=interval, lookback_seconds=3600)
    peers = [CIJobTrigger(job_id=j, bucket=BUCKET, poll_interval=interval) for j in ids]

    async def watch_ours() -> None:
        async for event in ours.run():
            ours_events.append((time.time(), job_ids_of(event.payload)))

    async def watch_peer(trigger: Any) -> None:
        async for _event in trigger.run():
            peer_events.setdefault(trigger.job_id, time.time())
            return

    counter = _Counter(emu, ("ListJobs", "DescribeJobs"))
    counter.start()
    tasks = [asyncio.create_task(watch_ours())] + [asyncio.create_task(watch_peer(t)) for t in peers]
    await asyncio.sleep(interval * 1.5)  # every watcher has polled at least once with nothing finished yet

    def finish_all() -> dict[str, float]:
        # In slices of 0.5 s so the counter's calls interleave with the finishing (one pipe, one call at a time).
        ended: dict[str, float] = {}
        per_slice = max(1, round(len(ids) * 0.5 / finish_seconds))
        start = time.monotonic()
        for n, i in enumerate(range(0, len(ids), per_slice)):
            delay = start + n * 0.5 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ended.update(emu.call("finish_jobs", ids[i : i + per_slice], 0))
        return ended

    t_finish0 = time.time()
    ended = await asyncio.to_thread(finish_all)
    t_finish1 = time.time()
    deadline = time.monotonic() + 3 * interval + 30
    while time.monotonic() < deadline:
        reported = {j for _, js in ours_events for j in js}
        if len(reported) >= len(ids) and len(peer_events) >= len(ids):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(interval)  # one more cycle: a duplicate would show here
    t_end = time.time()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    counter.stop()

    first: dict[str, float] = {}
    mentions: dict[str, int] = {}
    for t, js in ours_events:
        for j in js:
            mentions[j] = mentions.get(j, 0) + 1
            first.setdefault(j, t)
    lags = [first[j] - ended[j] for j in ids if j in first and j in ended]
    peer_lags = [peer_events[j] - ended[j] for j in ids if j in peer_events and j in ended]
    list_cycles = counter.cycles("ListJobs", gap=min(2.0, interval / 2))
    describe_cycles = counter.cycles("DescribeJobs", gap=min(2.0, interval / 2))
    window = t_end - t_finish0
    last = counter.samples[-1][1] if counter.samples else {"ListJobs": 0, "DescribeJobs": 0}

    def summary(values: list[float]) -> dict[str, Any]:
        return {
            "p50_s": round(percentile(values, 50) or 0.0, 2),
            "p99_s": round(percentile(values, 99) or 0.0, 2),
            "max_s": round(max(values), 2) if values else None,
            "within_interval_pct": round(100.0 * sum(1 for v in values if v <= interval) / max(1, len(values)), 1),
        }

    return {
        "jobs": len(ids),
        "interval_s": interval,
        "finish_window_s": round(t_finish1 - t_finish0, 1),
        "measured_window_s": round(window, 1),
        "ours": {
            "events": len(ours_events),
            "jobs_reported": len(first),
            "missing": len(ids) - len(set(first) & set(ids)),
            "duplicated": sum(1 for n in mentions.values() if n > 1),
            "unexpected": len(set(first) - set(ids)),
            "max_jobs_per_event": max((len(js) for _, js in ours_events), default=0),
            "list_requests_total": last["ListJobs"],
            "list_requests_per_cycle": list_cycles,
            "list_requests_per_cycle_max": max(list_cycles, default=0),
            "cycles": len(list_cycles),
            "lag": summary(lags),
        },
        "peer": {
            "events": len(peer_events),
            "describe_requests_total": last["DescribeJobs"],
            "describe_requests_per_cycle": describe_cycles,
            "describe_requests_per_cycle_mean": round(sum(describe_cycles) / max(1, len(describe_cycles)), 1),
            "lag": summary(peer_lags),
        },
    }


def main() -> None:
    p = argparse.ArgumentParser()
    env = os.environ.get
    p.add_argument("--jobs", type=int, default=int(env("BENCH_EVENTS_JOBS", "1000")))
    p.add_argument("--finish-seconds", type=float, default=float(env("BENCH_EVENTS_FINISH_SECONDS", "60")))
    p.add_argument("--interval", type=float, default=float(env("BENCH_EVENTS_INTERVAL", "10")))
    args = p.parse_args()
    setup_airflow_env()
    from emuproc import EmulatorProcess
    from jobseed import create_jobs_sync

    emu = EmulatorProcess()
    try:
        emu.call("put_object", BUCKET, INPUT_KEY, b"a tiny stand-in for a video")
        emu.call("set_job_timing", 0.0, 3600.0)  # running until the benchmark ends them
        ids, seed_s = create_jobs_sync(emu.info, BUCKET, args.jobs, INPUT_KEY, concurrency=8)
        log(f"bench events: {len(ids)} jobs created in {seed_s:.1f}s")
        emu.export_connection()
        emu.call("stats_reset")
        result = asyncio.run(_measure(emu, ids, args.interval, args.finish_seconds))
    finally:
        emu.stop()
    o, pr = result["ours"], result["peer"]
    log(
        f"bench events: ours {o['jobs_reported']}/{len(ids)} jobs in {o['events']} events, dup {o['duplicated']}, "
        f"ListJobs/cycle max {o['list_requests_per_cycle_max']}, lag p50 {o['lag']['p50_s']}s "
        f"p99 {o['lag']['p99_s']}s; "
        f"peer DescribeJobs/cycle {pr['describe_requests_per_cycle_mean']}, lag p50 {pr['lag']['p50_s']}s"
    )
    emit({"benchmark": "events", "seed_s": round(seed_s, 1), **result, "machine": machine()})


if __name__ == "__main__":
    main()
