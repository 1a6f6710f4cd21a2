"""The do-it-yourself peer of benchmark 1: one trigger polls one job, one request per job per poll.

This is how provider triggers usually wait for a remote job (a ``while True: describe(job); sleep(interval)``
loop in every trigger). It uses the same client stack as our trigger (``CIHook.aget_jobs``: httpx + the COS
SDK's signer), and, generously, one shared hook and HTTP client per process: a hook per trigger (what most
providers do) would add a client, a connection pool and an SSL context per waiting task on top.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

_HOOKS: dict[tuple[str, str | None], Any] = {}


def _shared_hook(conn_id: str, region: str | None) -> Any:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    key = (conn_id, region)
    if key not in _HOOKS:
        _HOOKS[key] = CIHook(tencentcloud_conn_id=conn_id, region=region)
    return _HOOKS[key]


class OneJobPollingTrigger(BaseTrigger):
    def __init__(
        self,
        job_id: str,
        bucket: str,
        tencentcloud_conn_id: str = "tencentcloud_default",
        region: str | None = None,
        poll_interval: float = 30.0,
        initial_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.bucket = bucket
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self.region = region
        self.poll_interval = poll_interval
        # Deferred tasks reach the triggerer at different moments: the benchmark spreads the peers' first polls
        # over one interval so they do not poll in lock-step bursts (which would be unfair to them).
        self.initial_delay = initial_delay

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "bucket": self.bucket,
                "tencentcloud_conn_id": self.tencentcloud_conn_id,
                "region": self.region,
                "poll_interval": self.poll_interval,
                "initial_delay": self.initial_delay,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = _shared_hook(self.tencentcloud_conn_id, self.region)
        if self.initial_delay > 0:
            await asyncio.sleep(self.initial_delay)
        while True:
            query = await hook.aget_jobs(self.bucket, [self.job_id])
            job = query.jobs[0] if query.jobs else None
            state = job.get("State") if job else None
            if state in ("Success", "Failed", "Cancel"):
                yield TriggerEvent({"status": "success" if state == "Success" else "failed", "job_id": self.job_id})
                return
            await asyncio.sleep(self.poll_interval)


class IdleTrigger(BaseTrigger):
    """Baseline: a trigger that only waits (one asyncio.Event), to measure what the triggerer itself costs per
    trigger (task, greenback portal, span, log context) apart from any provider code."""

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"job_id": self.job_id}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.Event().wait()
        yield TriggerEvent({"status": "success", "job_id": self.job_id})
