"""Small asyncio pieces for triggers: a wait with a timeout that keeps cancellations, and a light mailbox.

On Python < 3.12, ``asyncio.wait_for`` returns the inner result and drops the outer cancellation when both happen
at once. For a trigger that waits on a queue, that means a triggerer's cancel (restart, rebalancing, a cleared
task) can be silently ignored and the trigger keeps running: :func:`within` does not.

:class:`Mailbox` is what a waiting trigger receives poll results and callbacks in. A triggerer holds thousands of
waiting triggers, each with one inbox that is almost always empty: an ``asyncio.Queue`` costs about 1.5 KB empty
(three deques, an Event, a loop reference); a mailbox is one slotted object whose item list and wake-up future
exist only while something is in it or someone waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], timeout: float | None) -> T | None:
    """The awaitable's result, or None when ``timeout`` seconds pass first (None: no timeout)."""
    if timeout is None:
        return await awaitable
    inner = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({inner}, timeout=max(0.0, timeout))
    finally:
        if not inner.done():
            inner.cancel()
    return inner.result() if inner in done else None


class Mailbox:
    """A single-consumer inbox: ``put_nowait`` from the loop's thread (or ``call_soon_threadsafe``), ``get`` or
    ``wait`` + ``drain`` from one coroutine. Items are kept in order and never dropped."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        if self._waiter is not None:
            _wake(self._waiter)

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        return not self._items

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until the mailbox holds an item (True) or ``timeout`` seconds pass (False; None waits on).

        The timeout is a timer on the wake-up future, not a task around it: a cancellation reaches the waiting
        coroutine directly and is never lost, and a waiting trigger costs no extra task.
        """
        if self._items:
            return True
        if timeout is not None and timeout <= 0:
            return False
        waiter, timer = self._arm(timeout)
        try:
            await waiter
        finally:
            self._disarm(timer)
        return bool(self._items)

    async def get(self, timeout: float | None = None) -> Any:
        """The oldest item, or None when ``timeout`` seconds pass first (items are never None).

        Waits in this coroutine itself (not through ``wait``): one coroutine frame per waiting trigger, not two.
        """
        if not self._items:
            if timeout is not None and timeout <= 0:
                return None
            waiter, timer = self._arm(timeout)
            try:
                await waiter
            finally:
                self._disarm(timer)
            if not self._items:
                return None  # only the timer wakes the waiter without an item
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item

    def _arm(self, timeout: float | None) -> tuple[asyncio.Future[None], asyncio.TimerHandle | None]:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        return waiter, None if timeout is None else loop.call_later(timeout, _wake, waiter)

    def _disarm(self, timer: asyncio.TimerHandle | None) -> None:
        self._waiter = None
        if timer is not None:
            timer.cancel()

    def drain(self) -> list[Any]:
        """Every item in the mailbox, oldest first, emptying it."""
        items, self._items = self._items or [], None
        return items


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
