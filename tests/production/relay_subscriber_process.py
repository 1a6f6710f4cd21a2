"""A triggerer-like process for the relay tests: one relay subscription; acts on the token it holds, ignores others.

Usage: python -m tests.production.relay_subscriber_process <redis-url> <held-token> <output-file>
Each message becomes one line in the output file: ``acted <token>`` or ``ignored <token>``.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from airflow_provider_tencent_ci.triggers.callback_relay import RelaySubscriber


def main(url: str, held: str, output: Path) -> None:
    lock = threading.Lock()

    async def deliver(token: str, body: bytes, content_type: str) -> bool:
        with lock, output.open("a") as out:
            out.write(f"{'acted' if token == held else 'ignored'} {token}\n")
        return token == held

    subscriber = RelaySubscriber(url, deliver).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()
    subscriber.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
