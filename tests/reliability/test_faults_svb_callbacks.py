"""100 SegmentVideoBody jobs waited for by 100 CIJobCallbackTrigger instances in one asyncio loop (as one triggerer
runs them), while the emulator drops, duplicates, delays and reorders CI's callbacks (seeded), and 10 of the jobs
fail. Every trigger must yield exactly one event with the job's real final state; the emulator must show exactly
100 jobs; the fallback poll (short here) must recover every dropped callback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator import FaultConfig
from tests.reliability import _jobs, _support
from tests.reliability._support import BUCKET, FULL_BUCKET

N_JOBS = 100
N_FAILED = 10
SEED = 7


def test_100_jobs_with_30_percent_callback_faults(
    emu: Any, fast_conn: str, monkeypatch: pytest.MonkeyPatch, figures: Any
) -> None:
    from airflow_provider_tencent_ci.hooks.ci import CIHook
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger

    emu.put_object(BUCKET, "in/video.mp4", _support.mp4_bytes())
    emu.set_job_timing(3.0, 0.5)  # the triggers are all waiting before the jobs end
    emu.set_faults(
        FaultConfig(
            seed=SEED,
            callback_drop_rate=0.15,
            callback_duplicate_rate=0.15,
            callback_delay=(0.0, 0.5),
            callback_reorder=True,
        )
    )
    hook = CIHook(tencentcloud_conn_id=fast_conn)
    with _jobs.private_listener(monkeypatch) as listener:
        nonces: dict[str, str] = {}
        for n in range(N_JOBS):
            nonce = cl.new_nonce()
            fmt = "JSON" if n % 2 else "XML"
            job = hook.submit_job(
                BUCKET,
                _jobs.svb_request(
                    "in/video.mp4", f"out/{n:03d}.png", emu.region, cl.callback_url(cl.token_for_nonce(nonce)), fmt
                ),
            )
            nonces[str(job["JobId"])] = nonce
        doomed = list(nonces)[:N_FAILED]
        for job_id in doomed:
            emu.force_job_outcome(job_id, "Failed", code="InputFileInvalid", message="emulated failure")
        describe_before = emu.stats.count(operation="DescribeJobs")
        triggers = [
            CIJobCallbackTrigger(
                job_id=job_id,
                bucket=FULL_BUCKET,
                tencentcloud_conn_id=fast_conn,
                poll_interval=3.0,
                end_time=time.time() + 120,
                callback_nonce=nonce,
            )
            for job_id, nonce in nonces.items()
        ]

        async def run_all() -> list[list[Any]]:
            return list(await asyncio.gather(*(_jobs.first_event(t, 90) for t in triggers)))

        results = asyncio.run(run_all())
        delivered, buffered = listener.delivered, listener.buffered

    emu.set_faults(None)
    events_per_job = Counter()
    wrong_state = []
    for trigger, events in zip(triggers, results, strict=False):
        events_per_job[trigger.job_id] += len(events)
        if not events:
            continue
        payload = events[0].payload
        expected = ("failed", "Failed") if trigger.job_id in doomed else ("success", "Success")
        if (payload["status"], payload.get("state")) != expected or payload["job_id"] != trigger.job_id:
            wrong_state.append((trigger.job_id, payload))
        if trigger.job_id in doomed:
            assert payload["code"] == "InputFileInvalid"
    sent = emu.callbacks_sent
    dropped = sum(1 for c in sent if c.get("dropped"))
    copies = Counter(c["job_id"] for c in sent if not c.get("dropped") and c.get("attempt") == 1)
    duplicated = sum(1 for n in copies.values() if n > 1)
    assert all(n == 1 for n in events_per_job.values()), [j for j, n in events_per_job.items() if n != 1]
    assert len(events_per_job) == N_JOBS
    assert not wrong_state, wrong_state[:3]
    assert len(emu.jobs) == N_JOBS
    assert emu.stats.count(operation="CreateJob", ok=True) == N_JOBS
    assert dropped > 0 and duplicated > 0  # the faults really happened
    figures.record(
        "faults: 100 SVB jobs, callbacks dropped/duplicated/delayed/reordered",
        jobs=N_JOBS,
        jobs_in_emulator=len(emu.jobs),
        completed_exactly_once=sum(1 for n in events_per_job.values() if n == 1),
        wrong_final_state=len(wrong_state),
        lost=N_JOBS - len(events_per_job),
        callbacks_dropped=dropped,
        callbacks_duplicated=duplicated,
        callbacks_delivered_to_triggers=delivered,
        callbacks_buffered_before_trigger_started=buffered,
        describe_requests=emu.stats.count(operation="DescribeJobs") - describe_before,
        seed=SEED,
        failed_jobs=N_FAILED,
    )
