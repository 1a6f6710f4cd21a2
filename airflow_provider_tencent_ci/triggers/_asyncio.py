"""A wait with a timeout that never loses the caller's cancellation.

On Python < 3.12, ``asyncio.wait_for`` returns the inner result and drops the outer cancellation when both happen
at once. For a trigger that waits on a queue, that means a triggerer's cancel (restart, rebalancing, a cleared
task) can be silently ignored and the trigger keeps running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

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
