"""Benchmark 8: 100,000 items in one task (issue 16, item 2).

``--items`` tiny PNG objects are seeded in the emulator (in its own process; benchmark mode: no latency, no pixel
work, so the figures are the client's), then ``PortraitMattingOperator.execute()`` runs in cloud mode over
``source_prefix`` three times in this process:

1. **first run**: every item processed. Figures: XCom bytes (the value ``execute()`` returns and every value it
   pushes, as JSON), RSS growth of this process (peak, sampled every 20 ms, and ``ru_maxrss``), time from the start
   of ``execute()`` to the first ``CIHook.image_process`` call (the first paid call), requests by operation.
2. **rerun**: every output exists. Figures: ListObjects per 1,000 outputs, HeadObject, paid calls (must be 0).
3. **changed sources**: ``--touched`` sources are put again after their outputs were made; a rerun must pay for
   exactly those (read from its manifest).

Peer (the behaviour before item 2, a do-it-yourself loop that keeps per-item documents): it lists every source
before its first paid call (timed at the full size: ``_batch.cos_items`` collects the listing into a list), returns
every item's document in XCom (its size is the first run's manifest as one JSON list: the same documents), holds
the source list and the documents in memory (their Python heap, tracemalloc, built at the full size: a lower
bound of its RSS growth, as this process's RSS would hide it in pages freed by the runs above), and checks a
rerun with one HEAD per output (a pool of ``--concurrency`` threads calling ``CIHook.head_object``, timed on the
first ``--peer-items`` outputs and extrapolated to ``--items``, stated as such in the result).

Usage: bench_bigbatch.py [--items 100000] [--concurrency 16] [--touched 5] [--peer-items 2000]
(BENCH_BIGBATCH_ITEMS, BENCH_BIGBATCH_CONCURRENCY, BENCH_BIGBATCH_TOUCHED, BENCH_BIGBATCH_PEER_ITEMS.)
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import resource
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_batch import _TI, BUCKET
from common import emit, log, machine, rss_bytes, setup_airflow_env

SRC = "src/"
OUT = "out/"
OPS = ("ImageProcess", "ListObjects", "HeadObject", "PutObject", "GetObject")
MB = 1024 * 1024


def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 80)).save(buf, format="PNG")
    return buf.getvalue()


class _PeakRSS:
    """The highest RSS of this process while the block runs (sampled every ``period`` seconds)."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.peak = period, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes())
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def _first_paid_probe() -> list[float]:
    """Record when each ``CIHook.image_process`` call starts (instrumentation only: the call is unchanged)."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    starts: list[float] = []
    original = CIHook.image_process

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not starts:
            starts.append(time.perf_counter())
        return original(self, *args, **kwargs)

    CIHook.image_process = timed  # type: ignore[method-assign]
    return starts


def _operator(concurrency: int) -> Any:
    from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator

    return PortraitMattingOperator(
        task_id="bigbatch",
        bucket=BUCKET,
        source_prefix=SRC,
        output_key=OUT + "{stem}.png",
        max_concurrency=concurrency,
        if_exists="skip",
    )


def _run(emu: Any, label: str, concurrency: int, starts: list[float]) -> tuple[Any, dict[str, Any], Any]:
    """One ``execute()`` with its figures; returns (op, row, returned value)."""
    op = _operator(concurrency)
    ti = _TI()
    emu.call("stats_reset")
    starts.clear()
    gc.collect()
    rss0 = rss_bytes()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    with _PeakRSS() as peak:
        result = op.execute({"ti": ti, "run_id": label})  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    calls = {name: emu.call("stats_count", name) for name in OPS}
    pushed = {k: len(json.dumps(v, default=str)) for k, v in ti.xcom.items()}
    returned = len(json.dumps(result, default=str))
    total = result.get("total") if isinstance(result, dict) else len(result)
    row: dict[str, Any] = {
        "label": label,
        "items": total,
        "processed": result.get("processed") if isinstance(result, dict) else None,
        "skipped": result.get("skipped") if isinstance(result, dict) else None,
        "failed": result.get("failed") if isinstance(result, dict) else None,
        "seconds": round(secs, 2),
        "items_per_s": round(total / secs, 1) if secs else None,
        "first_paid_call_s": round(starts[0] - t0, 3) if starts else None,
        "xcom_return_bytes": returned,
        "xcom_pushed_bytes": pushed,
        "xcom_total_bytes": returned + sum(pushed.values()),
        "rss_growth_peak_mb": round((peak.peak - rss0) / MB, 1),
        # ru_maxrss only moves when the process sets a new lifetime peak: 0 means below an earlier peak.
        "ru_maxrss_growth_mb": round(max(0, maxrss1 - max(rss0, maxrss0)) / MB, 1),
        "calls": calls,
        "list_per_1000_items": round(calls["ListObjects"] / (total / 1000), 2) if total else None,
        "manifest": result.get("manifest") if isinstance(result, dict) else None,
    }
    log(
        f"bench bigbatch: {label}: {total} items in {secs:.1f}s, first paid call "
        f"{row['first_paid_call_s']} s, XCom {row['xcom_total_bytes']} B, RSS +{row['rss_growth_peak_mb']} MB, "
        f"calls {calls}"
    )
    return op, row, result


def _manifest_docs(op: Any, result: dict[str, Any]) -> list[bytes]:
    body = op.hook.get_object_bytes(result["manifest_bucket"], result["manifest_key"])
    return [line for line in body.splitlines() if line.strip()]


def _peer(emu: Any, op: Any, lines: list[bytes], items: int, peer_items: int, concurrency: int) -> dict[str, Any]:
    """The pre-item-2 behaviour: list first, keep every document, HEAD every output on a rerun."""
    from airflow_provider_tencent_ci.operators import _batch

    hook = op.hook
    bucket = hook.bucket_name(BUCKET)
    # (a) the whole listing before the first paid call.
    emu.call("stats_reset")
    t0 = time.perf_counter()
    sources = _batch.cos_items(hook, bucket, key=None, keys=None, prefix=SRC, modified_after=None, modified_before=None)
    listing_s = time.perf_counter() - t0
    list_calls = emu.call("stats_count", "ListObjects")
    del sources
    # (b) what it holds until the end: the source list and every document (Python heap, tracemalloc: this
    # process's RSS would hide it in pages the runs above freed).
    gc.collect()
    tracemalloc.start()
    sources = _batch.cos_items(hook, bucket, key=None, keys=None, prefix=SRC, modified_after=None, modified_before=None)
    docs = [json.loads(line) for line in lines]
    held_mb = tracemalloc.get_traced_memory()[0] / MB
    tracemalloc.stop()
    # (c) the XCom a list of every document makes (the documents are the manifest's lines).
    xcom_bytes = len(json.dumps(docs, default=str))
    outputs = [d["output_key"] for d in docs[:peer_items]]
    del docs, sources
    gc.collect()
    # (d) a rerun that HEADs every output (as the batch did for every size before item 2).
    emu.call("stats_reset")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-peer") as pool:
        heads = list(pool.map(lambda key: hook.head_object(bucket, key), outputs))
    head_s = time.perf_counter() - t0
    head_calls = emu.call("stats_count", "HeadObject")
    found = sum(1 for h in heads if h)
    scale = items / max(1, len(outputs))
    row = {
        "label": "peer: list first, per-item documents, HEAD per output",
        "items": items,
        "first_paid_call_s": round(listing_s, 3),
        "listing_requests": list_calls,
        "xcom_total_bytes": xcom_bytes,
        "xcom_bytes_per_item": round(xcom_bytes / max(1, len(lines)), 1),
        "heap_held_mb": round(held_mb, 1),
        "rerun_measured_items": len(outputs),
        "rerun_measured_head_requests": head_calls,
        "rerun_measured_found": found,
        "rerun_measured_seconds": round(head_s, 2),
        "rerun_head_requests_at_items": round(head_calls * scale),
        "rerun_seconds_at_items_extrapolated": round(head_s * scale, 1),
    }
    log(f"bench bigbatch: peer: {row}")
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    env = os.environ.get
    p.add_argument("--items", type=int, default=int(env("BENCH_BIGBATCH_ITEMS", "100000").replace("_", "")))
    p.add_argument("--concurrency", type=int, default=int(env("BENCH_BIGBATCH_CONCURRENCY", "16")))
    p.add_argument("--touched", type=int, default=int(env("BENCH_BIGBATCH_TOUCHED", "5")))
    p.add_argument("--peer-items", type=int, default=int(env("BENCH_BIGBATCH_PEER_ITEMS", "2000")))
    args = p.parse_args()
    setup_airflow_env()
    from emuproc import EmulatorProcess

    logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)
    logging.disable(logging.INFO)  # one log line per batch is all we want; none per item
    starts = _first_paid_probe()
    emu = EmulatorProcess()
    rows: list[dict[str, Any]] = []
    try:
        emu.export_connection()
        emu.call("set_faults", {"fixed_latency": 0.0})  # benchmark mode: no delay, no pixel work
        keys = [f"{SRC}img-{i:06d}.png" for i in range(args.items)]
        t0 = time.perf_counter()
        emu.call("put_objects", BUCKET, keys, _tiny_png(), "image/png")
        seed_s = time.perf_counter() - t0
        log(f"bench bigbatch: seeded {args.items} objects in {seed_s:.1f}s")
        # Warm-up outside the measurements: imports, connection, SDK client, one small batch.
        from bench_batch import _run_operator

        _run_operator(keys[:4], None, 4, "warm/", "overwrite")

        op, first, result = _run(emu, "first-run", args.concurrency, starts)
        rows.append(first)
        lines = _manifest_docs(op, result)
        first["manifest_lines"] = len(lines)
        first["manifest_bytes"] = sum(len(line) + 1 for line in lines)

        _, rerun, _ = _run(emu, "rerun", args.concurrency, starts)
        rows.append(rerun)

        time.sleep(1.1)  # COS dates have one-second precision: the new sources are strictly newer than outputs
        step = max(1, args.items // max(1, args.touched))
        touched = [keys[(i * step + 7) % args.items] for i in range(args.touched)]
        emu.call("put_objects", BUCKET, touched, _tiny_png(), "image/png")
        op3, changed, result3 = _run(emu, "changed-sources", args.concurrency, starts)
        redone = sorted(
            d["source_key"]
            for d in (json.loads(line) for line in _manifest_docs(op3, result3))
            if d.get("status") == "processed"
        )
        changed.update(touched=len(touched), redone_exactly_touched=redone == sorted(touched), redone=len(redone))
        rows.append(changed)

        peer = _peer(emu, op, lines, args.items, args.peer_items, args.concurrency)
        # The source listing's pages (counted on their own by the peer) and the output listing's, of every run.
        for row in rows:
            outs = row["calls"]["ListObjects"] - peer["listing_requests"]
            row.update(source_list_requests=peer["listing_requests"], output_list_requests=outs)
            row["output_list_per_1000_outputs"] = round(outs / (args.items / 1000), 2)
    finally:
        emu.stop()
    emit(
        {
            "benchmark": "bigbatch",
            "items": args.items,
            "max_concurrency": args.concurrency,
            "seed_s": round(seed_s, 1),
            "rows": rows,
            "peer": peer,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
