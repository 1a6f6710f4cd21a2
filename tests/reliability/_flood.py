"""A paced loopback HTTP flood for the callback listener, run as a separate process (its own GIL):

    python -m tests.reliability._flood PORT RATE SECONDS PATH_WRONG PATH_FORGED PATH_GOOD JOB_ID

Each request opens a connection, POSTs one callback and reads the status line (the listener closes every
connection). The mix per 20 requests: 14 wrong-token, 2 malformed, 2 forged state on the waiting job's real token,
2 good callbacks for an unregistered but validly signed token. Prints one JSON line of figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter


def body(job_id: str, state: str = "Success") -> bytes:
    return (
        f"<Response><EventName>TaskFinish</EventName><JobsDetail><JobId>{job_id}</JobId><State>{state}</State>"
        "</JobsDetail></Response>"
    ).encode()


async def post(port: int, path: str, payload: bytes) -> int:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError):
        return -1
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1]) if line else 0
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        return -1
    finally:
        writer.close()


async def main(port: int, rate: int, seconds: float, wrong: str, forged: str, good: str, job_id: str) -> dict:
    plan = (["wrong"] * 14) + ["malformed"] * 2 + ["forged"] * 2 + ["good"] * 2
    payloads = {
        "wrong": (wrong, body(job_id)),
        "malformed": (forged, b"<Response><JobsDetail>"),
        "forged": (forged, body(job_id, "Success")),
        "good": (good, body("a" + "1" * 32)),
    }
    counts: Counter[str] = Counter()
    latencies: list[float] = []
    tasks: list[asyncio.Task] = []
    total = int(rate * seconds)
    start = time.monotonic()

    async def one(kind: str) -> None:
        t0 = time.monotonic()
        status = await post(port, *payloads[kind])
        latencies.append(time.monotonic() - t0)
        counts[f"{kind}:{status}"] += 1

    for n in range(total):
        due = start + n / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(plan[n % len(plan)])))
    sent_seconds = time.monotonic() - start
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "sent": total,
        "send_seconds": round(sent_seconds, 2),
        "achieved_rate": round(total / sent_seconds, 1),
        "statuses": dict(counts),
        "p99_latency_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1) if latencies else None,
    }


if __name__ == "__main__":
    port, rate, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(main(port, rate, seconds, *sys.argv[4:8]))))
