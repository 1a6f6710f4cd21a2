"""Benchmark 3: batch image throughput.

1,000 images through PortraitMattingOperator's batch path (cloud mode: ``POST /<key>?image_process`` per image)
at max_concurrency 8, 32 and 64, against the emulator in its fixed-latency mode (every call takes
``--latency`` seconds, no pixel work), so the figures measure the client side: how close the operator gets to
the ceiling ``max_concurrency / latency``.

Peer: the do-it-yourself loop a user would write in a PythonOperator, ``CosS3Client.ci_image_process`` on one
image after another (measured on the first ``--peer-images`` images: its rate does not depend on the count).

The operator runs through ``execute()`` with a minimal context (the only context use is the extra-link XCom).

Usage: bench_batch.py [--images 1000] [--concurrency 8,32,64] [--latency 0.05] [--peer-images 100]
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import emit, int_list, log, machine, setup_airflow_env

BUCKET = "examplebucket-1250000000"
RULE = "ci-process=AIPortraitMatting"


class _TI:
    """What execute() touches on the task instance: XCom pushes (the extra link)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 80)).save(buf, format="PNG")
    return buf.getvalue()


def _run_operator(keys: list[str] | None, prefix: str | None, concurrency: int, out: str, if_exists: str) -> Any:
    from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator

    op = PortraitMattingOperator(
        task_id=f"bench_{out.strip('/').replace('/', '_')}",
        bucket=BUCKET,
        source_keys=keys,
        source_prefix=prefix,
        output_key=out + "{stem}.png",
        max_concurrency=concurrency,
        if_exists=if_exists,
    )
    t0 = time.perf_counter()
    result = op.execute({"ti": _TI()})  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    if isinstance(result, dict):  # a batch over the per-item XCom limit returns a summary: read its manifest
        body = op.hook.get_object_bytes(result["manifest_bucket"], result["manifest_key"])
        result = [json.loads(line) for line in body.splitlines() if line.strip()]
    return result, secs


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _sdk_loop(emu: Any, keys: list[str], out: str) -> float:
    """The do-it-yourself peer: the SDK's ci_image_process, one image after the other."""
    from qcloud_cos import CosConfig, CosS3Client

    info = emu.info
    client = CosS3Client(
        CosConfig(
            Region=info["region"],
            SecretId=info["secret_id"],
            SecretKey=info["secret_key"],
            Scheme="http",
            Proxies={"http": info["url"], "https": info["url"]},
        ),
        retry=1,
    )
    t0 = time.perf_counter()
    for key in keys:
        stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        ops = {"is_pic_info": 1, "rules": [{"fileid": f"/{out}{stem}.png", "rule": RULE}]}
        client.ci_image_process(Bucket=BUCKET, Key=key, PicOperations=json.dumps(ops))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=int(os.environ.get("BENCH_BATCH_IMAGES", "1000")))
    p.add_argument("--concurrency", default=os.environ.get("BENCH_BATCH_CONCURRENCY", "8,32,64"))
    p.add_argument("--latency", type=float, default=float(os.environ.get("BENCH_BATCH_LATENCY", "0.05")))
    p.add_argument("--peer-images", type=int, default=int(os.environ.get("BENCH_BATCH_PEER_IMAGES", "100")))
    args = p.parse_args()
    setup_airflow_env()
    from emuproc import EmulatorProcess

    logging.getLogger("qcloud_cos").setLevel(logging.ERROR)  # one warning per 404 HEAD otherwise
    emu = EmulatorProcess()
    rows: list[dict[str, Any]] = []
    try:
        emu.export_connection()
        keys = [f"in/img-{i:05d}.png" for i in range(args.images)]
        emu.call("put_objects", BUCKET, keys, _png(), "image/png")
        emu.call("set_faults", {"fixed_latency": args.latency})
        # Warm-up (imports, connection, client) on a few images, outside the measurements.
        _run_operator(keys[:4], None, 4, "warm/", "overwrite")
        ops = ("ImageProcess", "HeadObject", "ListObjects")

        def case(label: str, concurrency: int, source: str, if_exists: str) -> None:
            emu.call("stats_reset")
            out = f"out/{label}/"
            cpu0, ecpu0 = time.process_time(), _proc_cpu(emu.proc.pid)
            docs, secs = _run_operator(
                keys if source == "keys" else None, "in/" if source == "prefix" else None, concurrency, out, if_exists
            )
            cpu1, ecpu1 = time.process_time(), _proc_cpu(emu.proc.pid)
            counts = {op: emu.call("stats_count", op) for op in ops}
            processed = sum(1 for d in docs if d.get("status") == "processed")
            calls_per_image = sum(counts.values()) / max(1, len(docs))
            rate = len(docs) / secs
            ceiling = concurrency / args.latency
            row = {
                "label": label,
                "source": source,
                "if_exists": if_exists,
                "max_concurrency": concurrency,
                "images": len(docs),
                "processed": processed,
                "failed": sum(1 for d in docs if d.get("status") == "failed"),
                "seconds": round(secs, 3),
                "images_per_s": round(rate, 1),
                "ceiling_images_per_s": round(ceiling, 1),
                "fraction_of_ceiling": round(rate / ceiling, 3),
                "calls": counts,
                "calls_per_image": round(calls_per_image, 3),
                # The ceiling for this call pattern: every image needs calls_per_image sequential calls.
                "ceiling_for_calls_images_per_s": round(ceiling / max(1.0, calls_per_image), 1),
                # Where the CPU went (2 cores shared by this process and the emulator's).
                "client_cpu_ms_per_image": round((cpu1 - cpu0) * 1000 / max(1, len(docs)), 3),
                "emulator_cpu_ms_per_image": round((ecpu1 - ecpu0) * 1000 / max(1, len(docs)), 3),
                "client_cpu_utilisation": round((cpu1 - cpu0) / secs, 2),
            }
            log(f"bench 3: {label}: {rate:.0f} images/s ({row['fraction_of_ceiling']:.0%} of {ceiling:.0f})")
            rows.append(row)

        for c in int_list(args.concurrency):
            case(f"keys-c{c}", c, "keys", "overwrite")
        case("prefix-c32", 32, "prefix", "overwrite")
        case("keys-c32-skip-first-run", 32, "keys", "skip")
        # The same again: every output exists now, so a rerun only checks (HEADs) and pays for nothing.
        emu.call("stats_reset")
        docs, secs = _run_operator(keys, None, 32, "out/keys-c32-skip-first-run/", "skip")
        rows.append(
            {
                "label": "keys-c32-skip-rerun",
                "source": "keys",
                "if_exists": "skip",
                "max_concurrency": 32,
                "images": len(docs),
                "skipped": sum(1 for d in docs if d.get("status") == "skipped"),
                "seconds": round(secs, 3),
                "images_per_s": round(len(docs) / secs, 1),
                "calls": {op: emu.call("stats_count", op) for op in ops},
            }
        )

        peer_keys = keys[: args.peer_images]
        emu.call("stats_reset")
        peer_s = _sdk_loop(emu, peer_keys, "out/sdk-loop/")
        peer_rate = len(peer_keys) / peer_s
        peer = {
            "label": "sdk-sequential-loop",
            "images": len(peer_keys),
            "seconds": round(peer_s, 3),
            "images_per_s": round(peer_rate, 2),
            "ceiling_images_per_s": round(1 / args.latency, 1),
            "calls": {"ImageProcess": emu.call("stats_count", "ImageProcess")},
        }
        log(f"bench 3: SDK loop: {peer_rate:.1f} images/s")
        for row in rows:
            row["speedup_vs_sdk_loop"] = round(row["images_per_s"] / peer_rate, 1)
    finally:
        emu.stop()
    emit({"benchmark": "batch", "latency_s": args.latency, "rows": rows, "peer": peer, "machine": machine()})


if __name__ == "__main__":
    main()
