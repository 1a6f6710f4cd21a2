"""How a caller that paces itself hears of throttling that the hooks retried on their own.

The hooks retry a throttled attempt with backoff (``hooks/retry.py``); a call that succeeds on its third attempt
looks like plain success to its caller. The image batch's adaptive limiter must slow down on every throttled
attempt, so it sets :data:`throttle_listener` in each worker thread and the hooks call :func:`report_throttle`.
A light module (no SDK import): operators import it at DAG-parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

# Per thread: a new thread starts with an empty context, so one batch's listener never leaks into another thread.
throttle_listener: ContextVar[Callable[[], None] | None] = ContextVar("tencent_ci_throttle_listener", default=None)


def report_throttle() -> None:
    """Tell the current thread's pacing caller, if any, that an attempt was throttled."""
    listener = throttle_listener.get()
    if listener is not None:
        listener()
