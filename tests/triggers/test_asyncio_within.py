"""`within` never loses a cancellation that coincides with its result (asyncio.wait_for on 3.10/3.11 does)."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_tencent_ci.triggers._asyncio import within


async def test_a_cancel_that_coincides_with_the_result_is_not_swallowed() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.ensure_future(within(queue.get(), 10))
    await asyncio.sleep(0)  # the task now waits on the queue
    queue.put_nowait("item")  # the inner get completes ...
    task.cancel()  # ... in the same loop iteration as the triggerer's cancel
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_result_and_timeout() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    assert await within(queue.get(), 0.01) is None
    queue.put_nowait("item")
    assert await within(queue.get(), 1) == "item"
    queue.put_nowait("again")
    assert await within(queue.get(), None) == "again"
    assert queue.qsize() == 0  # a timed-out get took nothing from the queue


async def test_mailbox_keeps_order_wakes_its_reader_and_a_cancelled_get_takes_nothing() -> None:
    from airflow_provider_tencent_ci.triggers._asyncio import Mailbox

    box = Mailbox()
    assert await within(box.get(), 0.01) is None and box.empty()
    reader = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    box.put_nowait("first")
    box.put_nowait("second")
    assert await reader == "first"
    assert box.qsize() == 1
    assert await within(box.get(), 1) == "second"
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    box.put_nowait("third")
    box.put_nowait("fourth")
    await box.wait()
    assert box.drain() == ["third", "fourth"] and box.drain() == [] and box.empty()


async def test_mailbox_timeouts_and_a_coinciding_cancel_keeps_the_item() -> None:
    from airflow_provider_tencent_ci.triggers._asyncio import Mailbox

    box = Mailbox()
    assert await box.get(0.01) is None and await box.wait(0) is False
    box.put_nowait("now")
    assert await box.wait(0) is True and await box.get(0) == "now"
    task = asyncio.ensure_future(box.get(10))
    await asyncio.sleep(0)  # the task now waits on the mailbox
    box.put_nowait("item")  # the wait completes ...
    task.cancel()  # ... in the same loop iteration as the triggerer's cancel
    with pytest.raises(asyncio.CancelledError):
        await task
    assert box.drain() == ["item"]  # the cancelled get took nothing
