"""Benchmark 5: a batch against a rate-limited service (issue 16, item 1).

The emulator throttles the ``image`` operation family of the bucket to ``--rate`` requests/s (token bucket, burst =
rate; above it the documented ``503 SlowDown``) and answers after a seeded log-normal delay (``--median`` seconds,
shape ``--sigma``, capped at ``--cap``; no pixel work). Three clients process the same kind of images, one after
the other in the same run:

- **ours**: ``PortraitMattingOperator.execute()`` in cloud mode over ``source_keys`` (as bench_batch.py drives it)
  at ``--concurrency``: the batch runner with its adaptive limiter (``operators/_batch.py`` ``AdaptiveLimiter``).
- **fixed pool**: a ``ThreadPoolExecutor`` of ``--concurrency`` threads calling ``CIHook.image_process`` (our hook,
  with its retry policy) on every image: the same calls without adaptation.
- **SDK loop**: ``CosS3Client.ci_image_process`` one image after another with the SDK's own retry (its default
  ``retry=3``), on the first ``--peer-images`` images (its rate does not depend on the count).

Figures: sustained rate (successful ImageProcess answers / wall time) as a share of the limit, failed items, the
share of ImageProcess requests answered SlowDown, wall time; for ours the limiter's concurrency over time, and for
every client the successful and throttled answers per second (the emulator's counters, sampled every second).

Usage: bench_ratelimit.py [--images 10000] [--rate 50] [--median 0.3] [--sigma 0.6] [--cap 5] [--concurrency 32]
                          [--peer-images 100]
(BENCH_RATELIMIT_IMAGES, BENCH_RATELIMIT_RATE, BENCH_RATELIMIT_MEDIAN, BENCH_RATELIMIT_CONCURRENCY,
BENCH_RATELIMIT_PEER_IMAGES.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_batch import BUCKET, RULE, _png, _run_operator
from common import emit, log, machine, setup_airflow_env

OP = "ImageProcess"


class _Sampler:
    """Every ``period`` seconds: the emulator's ok / throttled ImageProcess counts, and (for ours) the limiter's
    limit and in-flight count."""

    def __init__(self, emu: Any, probe: Callable[[], dict[str, Any]] | None = None, period: float = 1.0) -> None:
        self.emu, self.probe, self.period = emu, probe, period
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        prev_ok = prev_thr = 0
        while not self._stop.wait(self.period):
            ok = self.emu.call("stats_count", OP, None, True)
            thr = self.emu.call("stats_count", OP, None, False)
            sample: dict[str, Any] = {
                "t": round(time.perf_counter() - t0, 1),
                "ok": ok - prev_ok,
                "throttled": thr - prev_thr,
            }
            prev_ok, prev_thr = ok, thr
            if self.probe is not None:
                sample.update(self.probe())
            self.samples.append(sample)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _figures(emu: Any, label: str, images: int, failed: int, secs: float, rate: float) -> dict[str, Any]:
    ok = emu.call("stats_count", OP, None, True)
    total = emu.call("stats_count", OP)
    snap = emu.call("stats_snapshot")
    codes = snap.get("errors", {}).get(OP, {})
    sustained = ok / secs
    row = {
        "label": label,
        "images": images,
        "failed_items": failed,
        "seconds": round(secs, 2),
        "requests": total,
        "ok_requests": ok,
        "throttled_requests": codes.get("SlowDown", 0),
        "other_errors": {c: n for c, n in codes.items() if c != "SlowDown"},
        "throttled_pct": round(100.0 * codes.get("SlowDown", 0) / max(1, total), 2),
        "sustained_per_s": round(sustained, 2),
        "pct_of_limit": round(100.0 * sustained / rate, 1),
    }
    log(
        f"bench ratelimit: {label}: {sustained:.1f}/s = {row['pct_of_limit']}% of {rate:g}, "
        f"throttled {row['throttled_pct']}%, failed {failed}, {secs:.1f}s"
    )
    return row


def _instrument_limiter() -> list[Any]:
    """Keep every AdaptiveLimiter the batch runner creates, so the sampler can read its limit (instrumentation of
    the benchmark only: the class's behaviour is unchanged)."""
    from airflow_provider_tencent_ci.operators import _batch

    created: list[Any] = []
    base = _batch.AdaptiveLimiter

    class Recorded(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            created.append(self)

    _batch.AdaptiveLimiter = Recorded  # type: ignore[misc]
    return created


def _fixed_pool(keys: list[str], out: str, concurrency: int) -> tuple[int, float]:
    """The same calls as ours through the same hook, on a plain pool of ``concurrency`` threads: no adaptation."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    hook = CIHook()
    hook.get_conn()

    def one(key: str) -> bool:
        stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        ops = {"is_pic_info": 1, "rules": [{"fileid": f"/{out}{stem}.png", "rule": RULE}]}
        try:
            hook.image_process(BUCKET, key, ops)
            return True
        except Exception:
            return False

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-fixed") as pool:
        done = list(pool.map(one, keys))
    return sum(1 for d in done if not d), time.perf_counter() - t0


def _sdk_loop(emu: Any, keys: list[str], out: str) -> tuple[int, float]:
    """The do-it-yourself loop: the SDK's ci_image_process one image after another, the SDK's own retry."""
    from qcloud_cos import CosConfig, CosS3Client
    from qcloud_cos.cos_exception import CosException

    info = emu.info
    client = CosS3Client(
        CosConfig(
            Region=info["region"],
            SecretId=info["secret_id"],
            SecretKey=info["secret_key"],
            Scheme="http",
            Proxies={"http": info["url"], "https": info["url"]},
        ),
    )
    failed = 0
    t0 = time.perf_counter()
    for key in keys:
        stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        ops = {"is_pic_info": 1, "rules": [{"fileid": f"/{out}{stem}.png", "rule": RULE}]}
        try:
            client.ci_image_process(Bucket=BUCKET, Key=key, PicOperations=json.dumps(ops))
        except CosException:
            failed += 1
    return failed, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    env = os.environ.get
    p.add_argument("--images", type=int, default=int(env("BENCH_RATELIMIT_IMAGES", "10000")))
    p.add_argument("--rate", type=float, default=float(env("BENCH_RATELIMIT_RATE", "50")))
    p.add_argument("--median", type=float, default=float(env("BENCH_RATELIMIT_MEDIAN", "0.3")))
    p.add_argument("--sigma", type=float, default=float(env("BENCH_RATELIMIT_SIGMA", "0.6")))
    p.add_argument("--cap", type=float, default=float(env("BENCH_RATELIMIT_CAP", "5")))
    p.add_argument("--concurrency", type=int, default=int(env("BENCH_RATELIMIT_CONCURRENCY", "32")))
    p.add_argument("--peer-images", type=int, default=int(env("BENCH_RATELIMIT_PEER_IMAGES", "100")))
    p.add_argument("--cases", default=env("BENCH_RATELIMIT_CASES", "ours,ours1,fixed,sdk"))
    args = p.parse_args()
    setup_airflow_env()
    from emuproc import EmulatorProcess

    logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)
    # Our hook logs one warning per retried throttle: thousands of lines that would only slow the client down.
    logging.disable(logging.WARNING)
    created = _instrument_limiter()
    cases = set(args.cases.split(","))
    rows: list[dict[str, Any]] = []
    timelines: dict[str, list[dict[str, Any]]] = {}
    emu = EmulatorProcess()
    try:
        emu.export_connection()
        keys = [f"in/img-{i:05d}.png" for i in range(args.images)]
        emu.call("put_objects", BUCKET, keys, _png(), "image/png")
        emu.call("set_faults", {"fixed_latency": 0.0})  # no pixel work; delays come from the latency model
        _run_operator(keys[:4], None, 4, "warm/", "overwrite")  # imports, connection, client
        emu.call("set_latency", args.median, args.sigma, args.cap, 1)
        emu.call("set_rate_limit", args.rate, None, ["image"])

        def fresh_bucket() -> None:
            # A full token bucket for every client: re-setting the limit builds a new limiter.
            emu.call("set_rate_limit", args.rate, None, ["image"])
            emu.call("stats_reset")
            time.sleep(1.0)

        def ours(label: str, max_attempts: int | None) -> None:
            name, value = emu.info["conn_env"]
            conn = json.loads(value)
            if max_attempts is not None:
                conn["extra"] = {**conn["extra"], "max_attempts": max_attempts}
            os.environ[name] = json.dumps(conn)
            fresh_bucket()

            def probe() -> dict[str, Any]:
                lim = created[-1] if created else None
                return {"limit": getattr(lim, "limit", None), "in_flight": getattr(lim, "in_flight", None)}

            try:
                with _Sampler(emu, probe) as sampler:
                    docs, secs = _run_operator(keys, None, args.concurrency, f"out/{label}/", "overwrite")
            finally:
                os.environ[name] = value
            failed = sum(1 for d in docs if d.get("status") != "processed")
            row = _figures(emu, label, len(docs), failed, secs, args.rate)
            lim = created[-1]
            row.update(
                connection_max_attempts=max_attempts or "default (4)",
                peak_concurrency=lim.peak,
                limit_decreases=lim.decreases,
                final_limit=lim.limit,
            )
            steady = [s["limit"] for s in sampler.samples[len(sampler.samples) // 3 :] if s.get("limit")]
            if steady:
                row["steady_limit"] = {
                    "min": min(steady),
                    "max": max(steady),
                    "mean": round(sum(steady) / len(steady), 1),
                }
            rows.append(row)
            timelines[label] = sampler.samples

        if "ours" in cases:
            ours("ours", None)
        if "ours1" in cases:
            # Every throttle reaches the batch runner (the hook does not retry it): what the limiter does when it
            # sees each one. Items it cannot place are put back in the queue (run_items' throttle rounds).
            ours("ours-max-attempts-1", 1)
        if "fixed" in cases:
            fresh_bucket()
            with _Sampler(emu) as sampler:
                failed, secs = _fixed_pool(keys, "out/fixed/", args.concurrency)
            rows.append(_figures(emu, "fixed-pool", len(keys), failed, secs, args.rate))
            timelines["fixed-pool"] = sampler.samples
        if "sdk" in cases:
            fresh_bucket()
            peer_keys = keys[: args.peer_images]
            failed, secs = _sdk_loop(emu, peer_keys, "out/sdk/")
            rows.append(_figures(emu, "sdk-sequential-loop", len(peer_keys), failed, secs, args.rate))
    finally:
        emu.stop()
    emit(
        {
            "benchmark": "ratelimit",
            "rate_limit_per_s": args.rate,
            "latency": {"median_s": args.median, "sigma": args.sigma, "cap_s": args.cap},
            "max_concurrency": args.concurrency,
            "rows": rows,
            "timelines": timelines,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
