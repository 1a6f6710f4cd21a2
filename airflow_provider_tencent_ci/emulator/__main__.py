"""``python -m airflow_provider_tencent_ci.emulator``: serve the emulator until SIGINT/SIGTERM.

Prints one line: the URL and the Airflow connection to export.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from pathlib import Path

from .core import Credential, default_credentials
from .faults import FaultConfig
from .server import Emulator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m airflow_provider_tencent_ci.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free port)")
    p.add_argument("--data-dir", type=Path, default=None, help="persist objects here (default: in memory)")
    p.add_argument("--secret-id", default=None, help="accept this SecretId (with --secret-key) instead of the defaults")
    p.add_argument("--secret-key", default=None)
    p.add_argument("--appid", default="1250000000")
    p.add_argument("--region", default="ap-guangzhou")
    p.add_argument("--faults", type=Path, default=None, help="JSON file with FaultConfig fields")
    p.add_argument(
        "--bucket", action="append", default=None, help="bucket to create (repeatable; default examplebucket)"
    )
    p.add_argument("--log-level", default="warning")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.secret_id is None) != (args.secret_key is None):
        print("error: --secret-id and --secret-key go together", file=sys.stderr)
        return 2
    credentials = None
    if args.secret_id is not None:
        # the STS default stays available for token tests
        credentials = [Credential(args.secret_id, args.secret_key), *default_credentials()[1:]]
    faults = None
    if args.faults is not None:
        try:
            faults = FaultConfig.from_dict(json.loads(args.faults.read_text("utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            print(f"error: --faults {args.faults}: {exc}", file=sys.stderr)
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
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emu.start()
    name, value = emu.airflow_conn_env()
    print(f"Tencent CI emulator on {emu.url}  {name}={shlex.quote(value)}", flush=True)
    try:
        while not stop.wait(0.5):
            if not emu.running:
                print("error: the emulator stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
