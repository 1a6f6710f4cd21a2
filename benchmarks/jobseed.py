"""Create many SegmentVideoBody jobs in the emulator cheaply: the real CreateJob API, signed by the COS SDK's own
signer, sent concurrently over one httpx client (the SDK itself is synchronous and would take minutes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

import httpx
from defusedxml import ElementTree


def _request_xml(input_key: str, output_bucket: str, output_key: str, region: str, callback: str | None) -> bytes:
    cb = f"<CallBack>{escape(callback)}</CallBack>" if callback else ""
    return (
        "<Request><Tag>SegmentVideoBody</Tag>"
        f"<Input><Object>{escape(input_key)}</Object></Input>"
        "<Operation><SegmentVideoBody><Mode>Mask</Mode></SegmentVideoBody>"
        f"<Output><Region>{region}</Region><Bucket>{output_bucket}</Bucket><Object>{escape(output_key)}</Object>"
        f"</Output></Operation>{cb}</Request>"
    ).encode()


async def create_jobs(
    info: dict[str, Any],
    bucket: str,
    n: int,
    input_key: str,
    callback_for: Callable[[int], str | None] | None = None,
    concurrency: int = 16,
) -> list[str]:
    """Create ``n`` jobs on the emulator described by ``info`` (EmulatorProcess.info); returns their JobIds in
    creation order. ``callback_for(i)`` gives job i's CallBack URL (None: no callback)."""
    from qcloud_cos import CosConfig, CosS3Client

    conf = CosConfig(
        Region=info["region"],
        SecretId=info["secret_id"],
        SecretKey=info["secret_key"],
        Scheme="http",
        Proxies={"http": info["url"]},
    )
    client = CosS3Client(conf, retry=0)
    url = conf.uri(bucket=bucket, path="/jobs", endpoint=conf._endpoint_ci)
    host = url.split("://", 1)[1].split("/", 1)[0]
    # Straight to the emulator with the real Host header (what a proxy would forward): httpx's proxy transport
    # costs several times more client CPU per request than the request itself.
    direct = info["url"].rstrip("/") + "/jobs"
    ids: list[str | None] = [None] * n
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, trust_env=False) as http:

        async def one(i: int) -> None:
            body = _request_xml(
                input_key, bucket, f"out/job-{i}.mp4", info["region"], callback_for(i) if callback_for else None
            )
            auth = client.get_auth(Method="POST", Bucket=bucket, Key="/jobs", UseCiEndPoint=True)
            async with sem:
                for attempt in range(5):
                    resp = await http.post(
                        direct,
                        content=body,
                        headers={"Host": host, "Authorization": auth, "Content-Type": "application/xml"},
                    )
                    if resp.status_code < 500:
                        break
                    await asyncio.sleep(0.2 * (attempt + 1))
            if resp.status_code != 200:
                raise RuntimeError(f"CreateJob {i} failed: HTTP {resp.status_code} {resp.text[:300]}")
            root = ElementTree.fromstring(resp.content)
            job_id = root.findtext("JobsDetail/JobId")
            if not job_id:
                raise RuntimeError(f"CreateJob {i}: no JobId in {resp.text[:300]}")
            ids[i] = job_id

        await asyncio.gather(*(one(i) for i in range(n)))
    return [i for i in ids if i is not None]


def create_jobs_sync(*args: Any, **kwargs: Any) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    ids = asyncio.run(create_jobs(*args, **kwargs))
    return ids, time.perf_counter() - t0
