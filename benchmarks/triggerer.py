"""Run triggers the way Airflow's triggerer does, in this process's event loop.

``start_triggers`` hands serialized triggers to Airflow's own ``TriggerRunner``: kwargs encrypted with
``Trigger.encrypt_kwargs`` (as the scheduler stores them), then ``create_triggers()`` imports each classpath,
decrypts and decodes the kwargs, builds the instance and runs it in ``run_trigger`` (greenback portal, span,
structured logging, events appended to ``runner.events``): the real code path, minus the supervisor process.

``Watchdog`` measures event-loop stalls: a coroutine asks to sleep ``tick`` seconds and records how late it
wakes; a late wake-up is time during which no other coroutine (no trigger) could run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterable
from typing import Any


def encrypted_workloads(triggers: Iterable[Any], first_id: int = 1) -> list[Any]:
    from airflow.executors.workloads.trigger import RunTrigger
    from airflow.models.trigger import Trigger

    out = []
    for n, trigger in enumerate(triggers):
        classpath, kwargs = trigger.serialize()
        out.append(RunTrigger(id=first_id + n, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs)))
    return out


def new_runner() -> Any:
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    return TriggerRunner()


async def start_triggers(runner: Any, workloads: list[Any]) -> float:
    """Create the triggers (Airflow's create_triggers); returns the seconds it took."""
    t0 = time.perf_counter()
    runner.to_create.extend(workloads)
    await runner.create_triggers()
    return time.perf_counter() - t0


def failed_tasks(runner: Any) -> list[str]:
    """Trigger tasks that ended with an exception (a benchmark bug or a provider bug: either is a finding)."""
    errors = []
    for tid, info in runner.triggers.items():
        task = info["task"]
        if task.done() and not task.cancelled() and task.exception() is not None:
            errors.append(f"{tid}: {type(task.exception()).__name__}: {task.exception()}")
    errors.extend(f"{tid}: {err}" for tid, err in runner.failed_triggers)
    return errors


async def stop_triggers(runner: Any) -> None:
    tasks = [info["task"] for info in runner.triggers.values() if not info["task"].done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


class Watchdog:
    """Longest event-loop stall, per named phase.

    Three figures per phase: ``wall`` is how late the loop woke up; ``cpu`` is the part of that lateness during
    which this process was actually running (process CPU time; any thread of it): on a shared machine the
    difference is time the OS gave to other processes; ``code`` is ``cpu`` minus the time spent in the garbage
    collector (``gc.callbacks``) during the same tick: code that held the loop. GC pauses are reported as well:
    a full collection of a large heap stalls every trigger too.
    """

    def __init__(self, tick: float = 0.02, threshold: float = 0.2) -> None:
        self.tick = tick
        self.threshold = threshold
        self.phase = "start"
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.over_wall: dict[str, int] = {}
        self.over_cpu: dict[str, int] = {}
        self.gc_max: dict[str, float] = {}
        self.gc_total: dict[str, float] = {}
        self.gc_full: dict[str, int] = {}
        self._gc_t0 = 0.0
        self._gc_clock = 0.0  # total seconds spent in the garbage collector so far
        self.non_gc: dict[str, float] = {}
        self.over_non_gc: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def set_phase(self, name: str) -> None:
        self.phase = name

    def _gc_callback(self, event: str, info: dict[str, Any]) -> None:
        if event == "start":
            self._gc_t0 = time.perf_counter()
        else:
            pause = time.perf_counter() - self._gc_t0
            phase = self.phase
            if pause > self.gc_max.get(phase, 0.0):
                self.gc_max[phase] = pause
            self.gc_total[phase] = self.gc_total.get(phase, 0.0) + pause
            self._gc_clock += pause
            if info.get("generation") == 2:
                self.gc_full[phase] = self.gc_full.get(phase, 0) + 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0, c0, g0 = loop.time(), time.process_time(), self._gc_clock
            await asyncio.sleep(self.tick)
            late = max(0.0, loop.time() - t0 - self.tick)
            busy = min(late, max(0.0, time.process_time() - c0))
            code = max(0.0, busy - (self._gc_clock - g0))  # running code, not collecting garbage
            phase = self.phase
            if code > self.non_gc.get(phase, -1.0):
                self.non_gc[phase] = code
            if code > self.threshold:
                self.over_non_gc[phase] = self.over_non_gc.get(phase, 0) + 1
            if late > self.wall.get(phase, -1.0):
                self.wall[phase] = late
            if busy > self.cpu.get(phase, -1.0):
                self.cpu[phase] = busy
            if late > self.threshold:
                self.over_wall[phase] = self.over_wall.get(phase, 0) + 1
            if busy > self.threshold:
                self.over_cpu[phase] = self.over_cpu.get(phase, 0) + 1

    def start(self) -> None:
        gc.callbacks.append(self._gc_callback)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="bench-watchdog")

    async def stop(self) -> None:
        if self._gc_callback in gc.callbacks:
            gc.callbacks.remove(self._gc_callback)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def report(self, phases: Iterable[str] | None = None) -> dict[str, Any]:
        keep = set(phases) if phases is not None else None

        def sel(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items() if keep is None or k in keep}

        wall, cpu, code = sel(self.wall), sel(self.cpu), sel(self.non_gc)
        return {
            "stall_code_s_by_phase": code,
            "max_stall_code_s": max(code.values(), default=0.0),
            "stalls_over_threshold_code": sel(self.over_non_gc),
            "stall_wall_s_by_phase": wall,
            "stall_cpu_s_by_phase": cpu,
            "max_stall_wall_s": max(wall.values(), default=0.0),
            "max_stall_cpu_s": max(cpu.values(), default=0.0),
            "stalls_over_threshold_wall": sel(self.over_wall),
            "stalls_over_threshold_cpu": sel(self.over_cpu),
            "gc_max_pause_s_by_phase": sel(self.gc_max),
            "gc_total_s_by_phase": sel(self.gc_total),
            "gc_full_collections_by_phase": sel(self.gc_full),
            "watchdog_tick_s": self.tick,
        }
