"""The job engine's bridge to the server's event loop: handlers and timers run on the loop, while control calls
(tests, the ``Emulator`` facade) may come from any thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any


class LoopBridge:
    """The loop the engine runs on, once the server has started it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def attach(self) -> None:
        """Called on the loop when serving starts."""
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def detach(self) -> None:
        self.loop = None
        self._thread = None

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the loop: now if we are on it (or not serving yet), else scheduled thread-safely."""
        loop = self.loop
        if loop is None:
            fn(*args)
        elif loop.is_closed():
            return
        elif threading.get_ident() == self._thread:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def spawn(self, coro: Callable[[], Coroutine[Any, Any, None]], tasks: set[asyncio.Task[None]]) -> None:
        """Start ``coro()`` as a task on the loop (call on the loop), tracked in ``tasks`` until it ends."""
        if self.loop is None:
            return
        task = self.loop.create_task(coro())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
