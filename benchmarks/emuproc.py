"""The emulator in its own process, driven through a pipe.

Why a separate process: the benchmarks measure our client side (event-loop stalls, resident memory, threads),
and an emulator on a thread of the same interpreter would share its GIL and heap and blur every figure.

``EmulatorProcess.call(name, *args)`` runs one of the commands below in the emulator process and returns its
result. Besides the facade's own calls (stats, job timing, faults) it has bulk helpers that would cost thousands
of pipe round trips otherwise, and one piece of instrumentation: the time each job's callback POST started
(``callback_times``), taken in the emulator process right before it sends.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from typing import Any


def _child(conn: Any, kwargs: dict[str, Any]) -> None:
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    from airflow_provider_tencent_ci.emulator import Emulator, FaultConfig

    emu = Emulator(**kwargs).start()
    engine = emu.state.jobs
    sender = engine._callbacks
    sent_at: dict[str, float] = {}

    # Instrumentation: when did the emulator start POSTing each job's callback (before any network I/O)?
    original_send = sender._send

    async def timed_send(base: dict[str, Any], delay: float, copy_no: int) -> None:
        if delay > 0:
            await _sleep(delay)
        sent_at.setdefault(base["job_id"], time.time())
        await original_send(base, 0.0, copy_no)

    async def _sleep(seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)

    sender._send = timed_send

    def finish_jobs(job_ids: list[str], rate: float, state: str = "Success") -> dict[str, float]:
        """Force jobs to a final state at ``rate`` per second (0: as fast as possible); returns when each was
        forced (epoch seconds)."""
        forced: dict[str, float] = {}
        start = time.monotonic()
        for n, job_id in enumerate(job_ids):
            if rate > 0:
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            forced[job_id] = time.time()
            emu.force_job_outcome(job_id, state)
        return forced

    def job_states() -> dict[str, int]:
        counts: dict[str, int] = {}
        with engine._lock:
            for record in engine._jobs.values():
                counts[record.state] = counts.get(record.state, 0) + 1
        return counts

    def put_objects(bucket: str, keys: list[str], data: bytes, content_type: str | None = None) -> int:
        for key in keys:
            emu.put_object(bucket, key, data, content_type=content_type)
        return len(keys)

    def set_faults(faults: dict[str, Any] | None) -> None:
        emu.set_faults(FaultConfig.from_dict(faults) if faults else None)

    def callback_summary() -> dict[str, int]:
        sent = emu.callbacks_sent
        ok = sum(1 for c in sent if c.get("status") and 200 <= int(c["status"]) < 300)
        return {"attempts": len(sent), "ok": ok}

    commands: dict[str, Any] = {
        "info": lambda: {
            "url": emu.url,
            "appid": emu.appid,
            "region": emu.region,
            "conn_env": emu.airflow_conn_env(),
            "secret_id": emu.secret_id,
            "secret_key": emu.secret_key,
        },
        "stats_count": lambda op=None, bucket=None, ok=None: emu.stats.count(op, bucket, ok),
        "stats_snapshot": lambda: emu.stats.snapshot(),
        "stats_reset": lambda: emu.stats.reset(),
        "set_job_timing": lambda q, r: emu.set_job_timing(q, r),
        "set_faults": set_faults,
        "set_rate_limit": lambda rate, burst=None, families=None: emu.set_rate_limit(rate, burst, families),
        "set_latency": lambda median, sigma=0.5, cap=None, seed=0: emu.set_latency(median, sigma, cap, seed),
        "put_object": lambda b, k, d, ct=None: put_objects(b, [k], d, ct),
        "put_objects": put_objects,
        "list_keys": lambda b, p="": emu.list_keys(b, p),
        "finish_jobs": finish_jobs,
        "job_states": job_states,
        "callback_times": lambda: dict(sent_at),
        "callback_summary": callback_summary,
        "clear_callback_times": lambda: sent_at.clear(),
        "reset": lambda: (emu.reset(), sent_at.clear())[-1],
    }
    conn.send(("ready", None))
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break
            if msg is None:
                break
            name, args, kw = msg
            try:
                conn.send(("ok", commands[name](*args, **kw)))
            except BaseException as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        emu.stop()


class EmulatorProcess:
    """Start the emulator in a spawned process; ``call`` runs commands there (thread-safe)."""

    def __init__(self, **emulator_kwargs: Any) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._lock = threading.Lock()
        self.proc = ctx.Process(target=_child, args=(child, emulator_kwargs), name="bench-emulator", daemon=True)
        self.proc.start()
        child.close()
        if not self._conn.poll(60):
            self.proc.kill()
            raise RuntimeError("the emulator process did not start within 60 s")
        status, _ = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"the emulator process failed to start: {status}")
        self.info: dict[str, Any] = self.call("info")
        self.url: str = self.info["url"]

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._conn.send((name, args, kwargs))
            status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"emulator command {name} failed: {value}")
        return value

    def export_connection(self, conn_id: str = "tencentcloud_default") -> None:
        """Point Airflow's ``conn_id`` at this emulator (environment variable connection)."""
        name, value = self.info["conn_env"]
        if conn_id != "tencentcloud_default":
            name = f"AIRFLOW_CONN_{conn_id.upper()}"
        os.environ[name] = value

    def stop(self) -> None:
        try:
            with self._lock:
                self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
