"""The flood scenario shared by the short run (``make test``) and the soak (``-m soak``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import _jobs, _support, _targets
from tests.reliability._support import BUCKET, FULL_BUCKET

REPO = Path(__file__).resolve().parents[2]


def run_flood(
    emu: Any, conn_id: str, monkeypatch: pytest.MonkeyPatch, rate: int, seconds: float, target_name: str = "listener"
) -> dict[str, Any]:
    """Flood one receiver (``_targets.TARGETS``) while a real trigger waits on a job behind it."""
    from airflow_provider_tencent_ci.triggers import callback_listener as cl
    from airflow_provider_tencent_ci.triggers.ci_job import CIJobCallbackTrigger

    emu.put_object(BUCKET, "in/flood.mp4", _support.mp4_bytes())
    emu.set_job_timing(0.0, 3600)
    # The production read deadline (10 s), not the short one of the hostile-input test.
    with _targets.target(target_name, monkeypatch, body_timeout=cl.READ_TIMEOUT_SECONDS) as target:
        nonce = cl.new_nonce()
        token = cl.token_for_nonce(nonce)
        job_id = _jobs.submit(conn_id, emu, "in/flood.mp4", "out/flood.png", cl.callback_url(token))
        trigger = CIJobCallbackTrigger(
            job_id=job_id,
            bucket=FULL_BUCKET,
            tencentcloud_conn_id=conn_id,
            poll_interval=600,
            end_time=time.time() + seconds + 120,
            callback_nonce=nonce,
        )
        result: dict[str, Any] = {}

        async def scenario() -> list[Any]:
            events: list[Any] = []

            async def run_trigger() -> None:
                async for ev in trigger.run():
                    events.append(ev)
                    return

            task = asyncio.create_task(run_trigger())
            await asyncio.sleep(0.5)
            rss_before = target.rss_kib()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.reliability._flood",
                str(target.port),
                str(rate),
                str(seconds),
                target.path(f"{cl.new_nonce()}.{'B' * 32}"),
                target.path(token),
                target.path(cl.token_for_nonce(cl.new_nonce())),
                job_id,
                cwd=str(REPO),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await proc.communicate()
            result.update(json.loads(out.decode().strip().splitlines()[-1]))
            result["rss_growth_mib"] = round((target.rss_kib() - rss_before) / 1024, 1)
            result["events_during_flood"] = len(events)
            result["receiver_serving"] = target.serving()
            await asyncio.to_thread(emu.force_job_outcome, job_id, "Success")
            await asyncio.wait_for(task, 180)
            return events

        events = asyncio.run(scenario())
        # This process's early buffer (the listener's; with the API-server receiver, Redis keeps callbacks instead).
        result["early_buffer_tokens"] = len(cl._INSTANCE.router.early) if cl._INSTANCE is not None else 0
    result["ci_callback_answers"] = [c.get("status") for c in emu.callbacks_sent if c["job_id"] == job_id]
    result["final_events"] = len(events)
    result["final_status"] = events[0].payload["status"] if events else None
    result["jobs_in_emulator"] = len(emu.jobs)
    return result


def check_flood(result: dict[str, Any]) -> None:
    statuses = result["statuses"]
    assert sum(statuses.values()) == result["sent"]
    bad = {k: v for k, v in statuses.items() if not k.endswith((":200", ":404", ":400"))}
    assert not bad, f"unanswered or unexpected answers: {bad}"
    assert all(k.startswith(("wrong:404", "malformed:400", "forged:200", "good:200")) for k in statuses), statuses
    assert result["events_during_flood"] == 0
    assert result["receiver_serving"]
    assert result["final_events"] == 1 and result["final_status"] == "success"
    assert result["rss_growth_mib"] < 100, result
