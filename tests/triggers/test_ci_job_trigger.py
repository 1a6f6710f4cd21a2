"""CIJobTrigger and the coalescing poller, run directly in one asyncio loop against the emulator."""

from __future__ import annotations

import asyncio
import importlib
import math
import time
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator.faults import FaultConfig, OperationFaults
from airflow_provider_tencent_ci.triggers.ci_job import CIJobTrigger
from airflow_provider_tencent_ci.triggers.poller import pollers_for_current_loop
from tests.triggers.helpers import BUCKET, await_until, job_state, put_input, run_trigger_task, submit


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(0.1, 0.3)
    put_input(tencent_conn)
    return tencent_conn


def _trigger(job_id: str, **kw: Any) -> CIJobTrigger:
    kw.setdefault("poll_interval", 0.1)
    return CIJobTrigger(job_id=job_id, bucket=BUCKET, region="ap-guangzhou", **kw)


async def test_success_returns_final_jobs_detail(emu: Any) -> None:
    job_id = submit()
    event = await asyncio.wait_for(anext(_trigger(job_id).run()), 20)
    assert event.payload["status"] == "success"
    assert event.payload["job"]["State"] == "Success"
    assert "MediaResult" in event.payload["job"]["Operation"]


@pytest.mark.parametrize("state", ["Failed", "Cancel"])
async def test_failed_and_cancel_carry_ci_code_and_message(emu: Any, state: str) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.force_job_outcome(job_id, state, code="VideoDecodeError", message="cannot decode the input")
    event = await asyncio.wait_for(anext(_trigger(job_id).run()), 20)
    assert event.payload["status"] == "failed"
    assert event.payload["state"] == state
    assert event.payload["code"] == "VideoDecodeError"
    assert event.payload["message"] == "cannot decode the input"


async def test_pause_keeps_waiting_then_completes(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.pause_job(job_id)
    trigger = _trigger(job_id)
    task = run_trigger_task(trigger)
    await await_until(lambda: trigger._last_state == "Pause")
    await asyncio.sleep(0.3)
    assert not task.done()
    emu.force_job_outcome(job_id, "Success")
    event = await asyncio.wait_for(task, 20)
    assert event.payload["status"] == "success"


async def test_fail_on_pause(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    emu.pause_job(job_id)
    event = await asyncio.wait_for(anext(_trigger(job_id, fail_on_pause=True).run()), 20)
    assert event.payload["status"] == "paused"


async def test_max_wait_yields_timeout(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    event = await asyncio.wait_for(anext(_trigger(job_id, end_time=time.time() + 0.5).run()), 20)
    assert event.payload["status"] == "timeout"
    assert job_state(emu, job_id) == "Submitted"


async def test_missing_job_is_an_error(emu: Any) -> None:
    event = await asyncio.wait_for(anext(_trigger("a" + "0" * 32).run()), 20)
    assert event.payload["status"] == "error"
    assert event.payload["code"] == "NoSuchJob"


async def test_throttling_and_5xx_are_transient(emu: Any) -> None:
    job_id = submit()
    emu.set_faults(
        FaultConfig(seed=3, per_operation={"DescribeJobs": OperationFaults(error_rate=0.6, errors=("throttle", "5xx"))})
    )
    event = await asyncio.wait_for(anext(_trigger(job_id).run()), 60)
    assert event.payload["status"] == "success"
    assert emu.stats.count(operation="DescribeJobs", ok=False) >= 1


async def test_coalesced_polling_n50_k10(emu: Any) -> None:
    n, k = 50, 10
    emu.set_job_timing(1.0, 1.0)
    jobs = [submit(f"out/c{i}.mp4") for i in range(n)]
    emu.stats.reset()
    triggers = [_trigger(j, poll_interval=0.2, batch_size=k) for j in jobs]
    events = await asyncio.wait_for(asyncio.gather(*(anext(t.run()) for t in triggers)), 60)
    assert [e.payload["status"] for e in events] == ["success"] * n
    poller = pollers_for_current_loop()[("tencentcloud_default", "ap-guangzhou", BUCKET)]
    describes = emu.stats.count(operation="DescribeJobs")
    assert poller.cycles >= 2  # the jobs were waited for over several cycles
    assert describes <= poller.cycles * math.ceil(n / k)
    assert describes == poller.requests  # the poller was the only client; one request per trigger would be n/cycle


async def test_serialize_round_trip_mid_wait(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    trigger = _trigger(job_id, end_time=time.time() + 600)
    task = run_trigger_task(trigger)
    await await_until(lambda: trigger._last_state == "Submitted")
    task.cancel()  # a triggerer restart: the trigger is torn down while waiting
    with pytest.raises(asyncio.CancelledError):
        await task
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_tencent_ci.triggers.ci_job.CIJobTrigger"
    assert emu.secret_key not in repr(kwargs) and emu.secret_id not in repr(kwargs)
    assert kwargs["tencentcloud_conn_id"] == "tencentcloud_default" and kwargs["region"] == "ap-guangzhou"
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    emu.force_job_outcome(job_id, "Success")
    event = await asyncio.wait_for(anext(rebuilt.run()), 20)
    assert event.payload["status"] == "success"


async def test_on_kill_cancels_a_queued_job(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    await _trigger(job_id).on_kill()
    assert job_state(emu, job_id) == "Cancel"
    assert emu.stats.count(operation="CancelJob") == 1


async def test_on_kill_respects_cancel_on_kill_false(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    await _trigger(job_id, cancel_on_kill=False).on_kill()
    assert job_state(emu, job_id) == "Submitted"
    assert emu.stats.count(operation="CancelJob") == 0


async def test_on_kill_of_a_started_job_is_refused_and_logged(emu: Any) -> None:
    emu.set_job_timing(0.0, 30)
    job_id = submit()
    await await_until(lambda: job_state(emu, job_id) == "Running")
    await _trigger(job_id).on_kill()  # must not raise
    assert job_state(emu, job_id) == "Running"
    assert emu.stats.count(operation="CancelJob") >= 1


async def test_cleanup_never_cancels(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job_id = submit()
    trigger = _trigger(job_id)
    task = run_trigger_task(trigger)
    await await_until(lambda: trigger._last_state == "Submitted")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.cleanup()
    assert job_state(emu, job_id) == "Submitted"
    assert emu.stats.count(operation="CancelJob") == 0


async def test_callback_confirmations_arriving_together_share_batched_queries(emu: Any) -> None:
    """A burst of callbacks is confirmed with ceil(N/K) job queries, not one request per callback."""
    from airflow_provider_tencent_ci.triggers.poller import get_poller

    n, k = 30, 10
    jobs = [submit(f"out/b{i}.mp4") for i in range(n)]
    await await_until(lambda: all(job_state(emu, j) == "Success" for j in jobs), timeout=30)
    emu.stats.reset()
    poller = get_poller("tencentcloud_default", "ap-guangzhou", BUCKET, k)
    results = await asyncio.gather(*(poller.fetch([j]) for j in jobs))
    assert [r[j].state for r, j in zip(results, jobs, strict=True)] == ["Success"] * n
    assert emu.stats.count(operation="DescribeJobs") == math.ceil(n / k)


async def test_poller_wakeups_do_not_examine_every_subscriber(emu: Any) -> None:
    """A wake-up looks at the subscriptions it takes (a due-time heap), not at all N of them (issue 16 item 3)."""
    from airflow_provider_tencent_ci.triggers.poller import JobPoller

    idle, fast_job = 500, submit()
    poller = JobPoller("tencentcloud_default", "ap-guangzhou", BUCKET, batch_size=100)
    quiet = [poller.subscribe("a" + f"{i:032x}", 3600) for i in range(idle)]  # polled once, then not for an hour
    await await_until(lambda: poller.cycles >= 1)
    fast = poller.subscribe(fast_job, 0.02)
    await await_until(lambda: poller.cycles >= 1)
    wakeups, examined = poller.wakeups, poller.examined
    await await_until(lambda: poller.wakeups >= wakeups + 20)
    per_wakeup = (poller.examined - examined) / (poller.wakeups - wakeups)
    assert per_wakeup <= 3, per_wakeup  # O(1): the fast subscription (and a stale entry now and then), not 500
    # Closing subscriptions is lazy: their entries are dropped when they surface or when the heap is compacted.
    for sub in quiet[: idle - 1]:
        sub.close()
    assert poller.subscriber_count == 2
    wakeups = poller.wakeups
    await await_until(lambda: poller.wakeups >= wakeups + 3)
    assert len(poller._due) <= 2 * poller.subscriber_count + 64
    fast.close()
    quiet[-1].close()
    await await_until(lambda: poller._task is not None and poller._task.done())
    assert poller._due == [] and poller.subscriber_count == 0


async def test_a_burst_of_new_subscriptions_is_polled_in_one_cycle(emu: Any) -> None:
    """Triggers created one after another (as the triggerer's create_triggers does) are first polled together,
    once the burst is over: no cycle runs for the first few while the rest are still being created."""
    from airflow_provider_tencent_ci.triggers.poller import JobPoller

    n, k = 30, 10
    emu.stats.reset()
    poller = JobPoller("tencentcloud_default", "ap-guangzhou", BUCKET, batch_size=k)
    subs = []
    for i in range(n):
        subs.append(poller.subscribe("b" + f"{i:031x}", 3600))
        await asyncio.sleep(0)  # the loop runs between two subscriptions: the poller could start a cycle here
    await await_until(lambda: poller.cycles >= 1)
    await await_until(lambda: emu.stats.count(operation="DescribeJobs") >= math.ceil(n / k))
    assert poller.cycles == 1 and poller.requests == math.ceil(n / k)  # all n in the first cycle, k per request
    assert all(sub.inbox.qsize() == 1 for sub in subs)  # every subscriber got its first answer from that cycle
    for sub in subs:
        sub.close()
    await await_until(lambda: poller._task is not None and poller._task.done())
