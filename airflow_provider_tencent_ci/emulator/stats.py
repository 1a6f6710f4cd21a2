"""Request accounting: one record per request, by operation, bucket and outcome. Thread-safe."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str | None, bool]] = Counter()
        self._codes: Counter[tuple[str, str]] = Counter()

    def record(self, operation: str, bucket: str | None, ok: bool, code: str | None = None) -> None:
        with self._lock:
            self._counts[(operation, bucket, ok)] += 1
            if code:
                self._codes[(operation, code)] += 1

    def count(self, operation: str | None = None, bucket: str | None = None, ok: bool | None = None) -> int:
        """Requests matching every given filter (None = any). ``bucket`` is the full ``name-appid``."""
        with self._lock:
            return sum(
                n
                for (op, b, good), n in self._counts.items()
                if (operation is None or op == operation)
                and (bucket is None or b == bucket)
                and (ok is None or good == ok)
            )

    def errors(self, operation: str | None = None, code: str | None = None) -> int:
        """Failed requests by error code (``"ConnectionReset"`` for dropped connections)."""
        with self._lock:
            return sum(
                n
                for (op, c), n in self._codes.items()
                if (operation is None or op == operation) and (code is None or c == code)
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._codes.clear()

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready: ``{"total", "operations": {op: {"ok", "error", "buckets": {b: n}}},
        "errors": {op: {code: n}}}``."""
        with self._lock:
            ops: dict[str, dict[str, Any]] = {}
            total = 0
            for (op, b, good), n in sorted(self._counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2])):
                total += n
                entry = ops.setdefault(op, {"ok": 0, "error": 0, "buckets": {}})
                entry["ok" if good else "error"] += n
                key = b or ""
                entry["buckets"][key] = entry["buckets"].get(key, 0) + n
            errs: dict[str, dict[str, int]] = {}
            for (op, c), n in self._codes.items():
                errs.setdefault(op, {})[c] = n
            return {"total": total, "operations": ops, "errors": errs}
