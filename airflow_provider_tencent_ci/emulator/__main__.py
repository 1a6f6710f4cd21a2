"""``python -m airflow_provider_tencent_ci.emulator``: serve the emulator, or drive a running one.

Serve (the default; until SIGINT/SIGTERM). Prints the URL and the Airflow connection to export, the control token
and the object view's address. A custom ``--secret-key`` is never printed.

    python -m airflow_provider_tencent_ci.emulator --port 9000 --bucket examplebucket \\
        --seed examplebucket:videos/=./clips --rate-limit 50 --latency-median 1.0

Drive a running emulator over its control API (``--url`` and ``--token``, or the environment variables
TENCENT_CI_EMULATOR_URL and TENCENT_CI_EMULATOR_TOKEN):

    ... seed --bucket examplebucket --prefix videos/ ./clips ./more/a.mp4   # files or folders into a bucket
    ... jobs                                                              # job ids and states
    ... job pause|resume|fail JOB_ID [--code C --message M]
    ... timing --queue-seconds 5 --run-seconds 30                          # slow jobs down to watch deferral
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .core import Credential, default_credentials
from .faults import FaultConfig
from .pacing import FAMILIES, LatencyModel, RateLimit
from .server import CONTROL_TOKEN_ENV, Emulator

URL_ENV = "TENCENT_CI_EMULATOR_URL"
CLIENT_COMMANDS = ("seed", "jobs", "job", "timing")
PROG = "python -m airflow_provider_tencent_ci.emulator"


# -- serving -----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Client commands: {PROG} {{{','.join(CLIENT_COMMANDS)}}} --help",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
    p.add_argument("--data-dir", type=Path, default=None, help="persist objects here (default: in memory)")
    p.add_argument("--secret-id", default=None, help="accept this SecretId (with --secret-key) instead of the defaults")
    p.add_argument("--secret-key", default=None, help="its SecretKey (never printed)")
    p.add_argument("--appid", default="1250000000")
    p.add_argument("--region", default="ap-guangzhou")
    p.add_argument("--faults", type=Path, default=None, help="JSON file with FaultConfig fields")
    p.add_argument(
        "--bucket", action="append", default=None, help="bucket to create (repeatable; default examplebucket)"
    )
    p.add_argument(
        "--control-token",
        default=None,
        help=f"token of the /_emulator/ control API (default: ${CONTROL_TOKEN_ENV}, else a random one)",
    )
    p.add_argument("--max-object-mb", type=int, default=None, help="largest accepted object body (default 512)")
    p.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="BUCKET[:PREFIX]=PATH",
        help="put a file or a folder's files into a bucket at start (repeatable)",
    )
    p.add_argument("--rate-limit", type=float, default=None, help="requests/s per bucket and operation family")
    p.add_argument("--rate-burst", type=float, default=None, help="token bucket size (default: the rate)")
    p.add_argument(
        "--rate-families", default=None, help=f"comma list of families to limit (default all: {','.join(FAMILIES)})"
    )
    p.add_argument("--latency-median", type=float, default=None, help="log-normal latency median, seconds")
    p.add_argument("--latency-sigma", type=float, default=0.5, help="log-normal shape (tail), default 0.5")
    p.add_argument("--latency-cap", type=float, default=None, help="longest latency, seconds")
    p.add_argument("--latency-seed", type=int, default=0)
    p.add_argument("--log-level", default="warning")
    return p


def _fault_config(args: argparse.Namespace) -> FaultConfig | None:
    faults = None
    if args.faults is not None:
        faults = FaultConfig.from_dict(json.loads(args.faults.read_text("utf-8")))
    if args.rate_limit is not None:
        families = tuple(f for f in args.rate_families.split(",") if f) if args.rate_families else None
        faults = faults or FaultConfig()
        faults.rate_limit = RateLimit(args.rate_limit, args.rate_burst, families)
    if args.latency_median is not None:
        faults = faults or FaultConfig()
        faults.latency_model = LatencyModel(
            args.latency_median, args.latency_sigma, args.latency_cap, args.latency_seed
        )
    return faults


def serve(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if (args.secret_id is None) != (args.secret_key is None):
        print("error: --secret-id and --secret-key go together", file=sys.stderr)
        return 2
    credentials = None
    if args.secret_id is not None:
        # the STS default stays available for token tests
        credentials = [Credential(args.secret_id, args.secret_key), *default_credentials()[1:]]
    try:
        faults = _fault_config(args)
        seeds = [_parse_seed(spec) for spec in args.seed]
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    emu = Emulator(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        credentials=credentials,
        faults=faults,
        appid=args.appid,
        region=args.region,
        buckets=args.bucket or ("examplebucket",),
        log_level=args.log_level,
        control_token=args.control_token or os.environ.get(CONTROL_TOKEN_ENV),
        max_object_bytes=args.max_object_mb * 1024 * 1024 if args.max_object_mb else None,
    )
    for bucket, prefix, path in seeds:
        full = emu.bucket_name(bucket)
        if not emu.store.has_bucket(full):
            print(f"error: --seed: no bucket {full!r} (add --bucket {bucket})", file=sys.stderr)
            return 2
        for key, file in files_to_seed([path], prefix):
            emu.put_object(full, key, file.read_bytes(), content_type=_content_type(file))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emu.start()
    name, value = emu.airflow_conn_env()
    if credentials is not None:
        conn = json.loads(value)
        conn["password"] = "<your --secret-key>"
        value = json.dumps(conn)
    print(f"Tencent CI emulator on {emu.url}  {name}={shlex.quote(value)}", flush=True)
    if credentials is not None:
        print("A custom secret key is in use (--secret-key); it is not printed: put it in the connection's password.")
    print(f"Control token: {emu.control_token}  (header 'Authorization: Bearer <token>'; {CONTROL_TOKEN_ENV})")
    print(f"Object view: {emu.console_base_url}/", flush=True)
    try:
        while not stop.wait(0.5):
            if not emu.running:
                print("error: the emulator stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        emu.stop()
    return 0


# -- seeding -------------------------------------------------------------------------------------------------------
def _parse_seed(spec: str) -> tuple[str, str, Path]:
    target, sep, path = spec.partition("=")
    if not sep or not target or not path:
        raise ValueError(f"--seed {spec!r}: expected BUCKET[:PREFIX]=PATH")
    bucket, _, prefix = target.partition(":")
    if not Path(path).exists():
        raise ValueError(f"--seed {spec!r}: {path} does not exist")
    return bucket, prefix, Path(path)


def files_to_seed(paths: Sequence[Path], prefix: str) -> Iterator[tuple[str, Path]]:
    """(key, file) for each file (key: prefix + name) and each folder's files (prefix + path inside the folder),
    in sorted order; hidden files and folders (dot names: editor leftovers, partial downloads) are skipped."""
    for path in paths:
        if path.is_file():
            yield prefix + path.name, path
            continue
        if not path.is_dir():
            raise ValueError(f"{path}: not a file or folder")
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path)
            if any(part.startswith(".") for part in rel.parts):
                continue
            yield prefix + rel.as_posix(), file


def _content_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


# -- the control API client -----------------------------------------------------------------------------------------
def _client_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get(URL_ENV), help=f"emulator URL (default ${URL_ENV})")
    common.add_argument(
        "--token", default=os.environ.get(CONTROL_TOKEN_ENV), help=f"control token (default ${CONTROL_TOKEN_ENV})"
    )
    p = argparse.ArgumentParser(prog=PROG, description="Drive a running emulator over its control API.")
    sub = p.add_subparsers(dest="command", required=True)
    seed = sub.add_parser("seed", parents=[common], help="put files or folders' files into a bucket")
    seed.add_argument("--bucket", required=True)
    seed.add_argument("--prefix", default="", help="key prefix, e.g. videos/")
    seed.add_argument("paths", nargs="+", type=Path)
    sub.add_parser("jobs", parents=[common], help="list jobs (id, state, input)")
    job = sub.add_parser("job", parents=[common], help="pause, resume or fail one job")
    job.add_argument("action", choices=("pause", "resume", "fail"))
    job.add_argument("job_id")
    job.add_argument("--code", default=None, help="fail: the job's error code")
    job.add_argument("--message", default=None, help="fail: the job's error message")
    timing = sub.add_parser("timing", parents=[common], help="how long new and running jobs queue and run")
    timing.add_argument("--queue-seconds", type=float, required=True)
    timing.add_argument("--run-seconds", type=float, required=True)
    return p


def client(argv: Sequence[str], out: Callable[[str], None] = print) -> int:
    import httpx

    args = _client_parser().parse_args(argv)
    if not args.url or not args.token:
        print(f"error: give --url and --token (or {URL_ENV} and {CONTROL_TOKEN_ENV})", file=sys.stderr)
        return 2
    base = args.url.rstrip("/") + "/_emulator"
    with httpx.Client(trust_env=False, timeout=60, headers={"Authorization": f"Bearer {args.token}"}) as http:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            answer = http.request(method, f"{base}/{path}", **kwargs)
            if answer.status_code >= 400:
                raise RuntimeError(f"{method} {path}: HTTP {answer.status_code}: {answer.text}")
            return answer.json()

        try:
            if args.command == "seed":
                files = list(files_to_seed(args.paths, args.prefix))
                for key, file in files:
                    done = call(
                        "PUT",
                        f"objects/{quote(args.bucket)}/{quote(key, safe='/')}",
                        content=file.read_bytes(),
                        headers={"Content-Type": _content_type(file)},
                    )
                    out(f"{done['bucket']}/{done['key']}  {done['size']} bytes")
                out(f"seeded {len(files)} object(s)")
            elif args.command == "jobs":
                for job in call("GET", "jobs")["jobs"]:
                    source = ((job.get("detail") or {}).get("Input") or {}).get("Object", "")
                    out(f"{job['JobId']}  {job['State']}  {job.get('bucket', '')}  {source}")
            elif args.command == "job":
                body = {k: v for k, v in (("code", args.code), ("message", args.message)) if v is not None}
                done = call("POST", f"jobs/{quote(args.job_id)}/{args.action}", json=body)
                out(f"{done['JobId']}  {done['State']}")
            else:
                timing = {"queue_seconds": args.queue_seconds, "run_seconds": args.run_seconds}
                out(json.dumps(call("POST", "timing", json=timing)))
        except (OSError, ValueError, RuntimeError, httpx.HTTPError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in CLIENT_COMMANDS:
        return client(argv)
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
