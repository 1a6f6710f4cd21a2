"""CIJobEventTrigger: every finished job reported once (one event per poll cycle or callback batch), never twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_tencent_ci.emulator.faults import FaultConfig
from airflow_provider_tencent_ci.triggers import callback_listener as cl
from airflow_provider_tencent_ci.triggers import ci_job
from airflow_provider_tencent_ci.triggers.ci_job import CIJobEventTrigger
from tests.triggers.helpers import BUCKET, await_until, put_input, submit


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(0.1, 0.2)
    put_input(tencent_conn)
    ci_job._MEMORY_CURSORS.clear()
    cl.get_listener()
    return tencent_conn


async def _collect(trigger: CIJobEventTrigger, events: list[Any]) -> None:
    async for event in trigger.run():
        events.append(event)


def _jobs(events: list[Any]) -> list[dict[str, Any]]:
    """Every job summary the events carry, in order."""
    return [job for event in events for job in event.payload["jobs"]]


def _trigger(**kw: Any) -> CIJobEventTrigger:
    kw.setdefault("poll_interval", 0.3)
    kw.setdefault("channel", "svb-events")
    return CIJobEventTrigger(bucket=BUCKET, region="ap-guangzhou", **kw)


async def test_one_event_per_job_from_callbacks_and_poll(emu: Any) -> None:
    from airflow.triggers.base import BaseEventTrigger

    assert isinstance(_trigger(), BaseEventTrigger)
    channel_url = cl.callback_url(cl.channel_token("svb-events"))
    emu.set_faults(FaultConfig(callback_duplicate_rate=1.0))  # every callback is sent twice
    with_callback = [
        submit(f"out/e{i}.mp4", CallBack=channel_url, CallBackFormat=fmt)
        for i, fmt in enumerate(["XML", "JSON", "XML"])
    ]
    without_callback = [submit("out/quiet.mp4", CallBack="no")]  # only the list poll can see it
    failed = submit("out/failed.mp4", CallBack=channel_url)
    emu.force_job_outcome(failed, "Failed", code="X", message="broken")
    expected = set(with_callback + without_callback + [failed])

    events: list[Any] = []
    task = asyncio.get_running_loop().create_task(_collect(_trigger(), events))
    try:
        await await_until(lambda: {j["job_id"] for j in _jobs(events)} >= expected, timeout=20)
        await asyncio.sleep(1.0)  # duplicated callbacks and further polls must not add anything
    finally:
        task.cancel()
    ids = [j["job_id"] for j in _jobs(events)]
    assert sorted(ids) == sorted(expected)  # exactly once each
    assert all(e.payload["jobs"] and e.payload["bucket"] == BUCKET for e in events)  # no empty events
    by_id = {j["job_id"]: j for j in _jobs(events)}
    assert by_id[failed]["state"] == "Failed" and by_id[failed]["message"] == "broken"
    assert by_id[without_callback[0]]["source"] == "poll"
    assert all(p["event_name"] == "TaskFinish" for p in by_id.values())
    assert sum(1 for c in emu.callbacks_sent if c.get("status") == 200) >= 2 * len(with_callback)

    # A rebuilt trigger (same kwargs, e.g. after a restart) resumes from the cursor: no repeats.
    again: list[Any] = []
    task = asyncio.get_running_loop().create_task(_collect(_trigger(), again))
    try:
        new_job = submit("out/new.mp4", CallBack=channel_url)
        await await_until(lambda: any(j["job_id"] == new_job for j in _jobs(again)), timeout=20)
        await asyncio.sleep(0.8)
    finally:
        task.cancel()
    assert [j["job_id"] for j in _jobs(again)] == [new_job]


async def test_forged_channel_callback_is_not_an_event(emu: Any) -> None:
    from tests.triggers.helpers import post, xml_callback

    emu.set_job_timing(30, 30)
    job_id = submit("out/slow.mp4")
    events: list[Any] = []
    task = asyncio.get_running_loop().create_task(_collect(_trigger(poll_interval=0.2), events))
    try:
        await asyncio.sleep(0.3)
        response = await post(cl.callback_url(cl.channel_token("svb-events")), xml_callback(job_id, "Success"))
        assert response.status_code == 200
        await asyncio.sleep(0.6)
        assert events == []
        emu.force_job_outcome(job_id, "Success")
        await await_until(lambda: len(events) == 1, timeout=20)
    finally:
        task.cancel()
    assert [j["job_id"] for j in _jobs(events)] == [job_id]


async def test_cursor_uses_asset_state_store_when_offered(emu: Any) -> None:
    class Store:  # the accessor shape Airflow 3.3 injects (aget/aset)
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        async def aget(self, key: str, default: Any = None) -> Any:
            return self.data.get(key, default)

        async def aset(self, key: str, value: Any) -> None:
            self.data[key] = value

    store = Store()
    job_id = submit("out/s.mp4")
    trigger = _trigger(channel=None, poll_interval=0.2)
    trigger.asset_state_store = store  # type: ignore[assignment]
    events: list[Any] = []
    task = asyncio.get_running_loop().create_task(_collect(trigger, events))
    try:
        await await_until(lambda: len(events) == 1, timeout=20)
    finally:
        task.cancel()
    cursor = store.data[trigger.cursor_key]
    assert job_id in cursor["seen"]
    ci_job._MEMORY_CURSORS.clear()  # a new process: only the durable store remembers
    again = _trigger(channel=None, poll_interval=0.2)
    again.asset_state_store = store  # type: ignore[assignment]
    more: list[Any] = []
    task = asyncio.get_running_loop().create_task(_collect(again, more))
    try:
        await asyncio.sleep(0.8)
    finally:
        task.cancel()
    assert more == []


def test_usable_as_an_asset_watcher() -> None:
    from airflow.sdk import Asset, AssetWatcher

    trigger = CIJobEventTrigger(bucket=BUCKET, region="ap-guangzhou", channel="svb-events")
    asset = Asset("tencent-ci-svb-results", watchers=[AssetWatcher(name="svb_jobs", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("CIJobEventTrigger") and kwargs["tencentcloud_conn_id"] == "tencentcloud_default"


def test_next_list_cycle_starts_early_by_the_last_cycles_duration() -> None:
    """A job that ends just after its page was read is reported at the end of the next cycle: that cycle starts
    early by the last one's duration so its end comes one interval after this cycle's start (not one interval
    plus a cycle); a cycle longer than half the interval never makes cycles start less than half an interval apart."""
    assert ci_job._next_cycle_start(100.0, 2.0, 10.0) == 108.0
    assert ci_job._next_cycle_start(100.0, 0.0, 10.0) == 110.0
    assert ci_job._next_cycle_start(100.0, 8.0, 10.0) == 105.0
