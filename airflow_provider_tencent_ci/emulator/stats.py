"""Request accounting: one record per request, by operation, bucket and outcome, and the query strings of the
latest requests (what a client sent, for tests that check a filter went out). Thread-safe."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

# The latest requests whose queries are kept; older ones are forgotten.
QUERY_LOG_SIZE = 1000
# Query-string signatures (COS presigned URLs: q-sign-algorithm, q-ak, q-signature, ...) and tokens: never kept.
_SECRET_QUERY_NAMES = ("x-cos-security-token", "x-ci-security-token")


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str | None, bool]] = Counter()
        self._codes: Counter[tuple[str, str]] = Counter()
        self._queries: deque[tuple[str, str | None, dict[str, str]]] = deque(maxlen=QUERY_LOG_SIZE)

    def log_query(self, operation: str, bucket: str | None, query: dict[str, str]) -> None:
        """Keep a request's decoded query (signature and token parameters left out)."""
        kept = {
            k: v for k, v in query.items() if not k.lower().startswith("q-") and k.lower() not in _SECRET_QUERY_NAMES
        }
        with self._lock:
            self._queries.append((operation, bucket, kept))

    def queries(self, operation: str | None = None, bucket: str | None = None) -> list[dict[str, str]]:
        """The decoded queries of the latest requests (oldest first) matching the filters (None = any)."""
        with self._lock:
            return [
                dict(q)
                for op, b, q in self._queries
                if (operation is None or op == operation) and (bucket is None or b == bucket)
            ]

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
            self._queries.clear()

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
