"""Per-object request counts on the emulator.

The emulator's Stats count by operation and bucket; a fault test needs them per object key as well (to bound the
attempts per item). This wraps ``EmulatorApp._process`` for the duration of a test: it only observes (operation,
key, outcome) and calls the original, so the emulator behaves exactly as without it.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest


class KeyCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.ok: Counter[tuple[str, str]] = Counter()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> KeyCounter:
        from airflow_provider_tencent_ci.emulator import app as emu_app

        original = emu_app.EmulatorApp._process
        counter = self

        async def counting(self: Any, req: Any, operation: str, *args: Any, **kwargs: Any) -> Any:
            with counter.lock:
                counter.requests[(operation, req.key)] += 1
            resp = await original(self, req, operation, *args, **kwargs)
            if getattr(resp, "status", 500) < 400:
                with counter.lock:
                    counter.ok[(operation, req.key)] += 1
            return resp

        monkeypatch.setattr(emu_app.EmulatorApp, "_process", counting)
        return self

    def per_key(self, operation: str) -> dict[str, int]:
        with self.lock:
            return {k: n for (op, k), n in self.requests.items() if op == operation}

    def ok_per_key(self, operation: str) -> dict[str, int]:
        with self.lock:
            return {k: n for (op, k), n in self.ok.items() if op == operation}
