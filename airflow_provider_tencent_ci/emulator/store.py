"""Object store: buckets of objects, in memory or persisted under a data directory.

Persistence layout (``<root>/<bucket>/``): each object is ``<sha256(key)>.bin`` (data) and
``<sha256(key)>.json`` (key, etag, content type, metadata, last modified), so any key, even with ``/`` or
unusual characters, maps to a safe file name. Writes go to a temp file and are renamed, so a crash never
leaves a half-written object. Everything is also kept in memory; the directory is read at start.

``ObjectRecord.metadata`` keys are the user metadata names WITHOUT the ``x-cos-meta-`` prefix, lower-case.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path


@dataclass
class ObjectRecord:
    key: str
    data: bytes
    etag: str  # '"<md5 hex>"'
    size: int
    last_modified: datetime
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class ListResult:
    contents: list[ObjectRecord]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str


def _fname(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ObjectStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._buckets: dict[str, dict[str, ObjectRecord]] = {}
        self._sorted: dict[str, list[str]] = {}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
            self._load()

    # -- persistence -------------------------------------------------------------------------------------------
    def _load(self) -> None:
        assert self.root is not None
        for bdir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            objs: dict[str, ObjectRecord] = {}
            for meta_path in bdir.glob("*.json"):
                try:
                    meta = json.loads(meta_path.read_text("utf-8"))
                    data = meta_path.with_suffix(".bin").read_bytes()
                except (OSError, ValueError):
                    continue  # an unreadable leftover is not an object
                objs[meta["key"]] = ObjectRecord(
                    key=meta["key"],
                    data=data,
                    etag=meta["etag"],
                    size=len(data),
                    last_modified=datetime.fromisoformat(meta["last_modified"]),
                    content_type=meta["content_type"],
                    metadata=dict(meta.get("metadata") or {}),
                )
            self._buckets[bdir.name] = objs
            self._sorted[bdir.name] = sorted(objs)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _persist(self, bucket: str, rec: ObjectRecord) -> None:
        if self.root is None:
            return
        bdir = self.root / bucket
        base = _fname(rec.key)
        self._write_atomic(bdir / f"{base}.bin", rec.data)
        meta = {
            "key": rec.key,
            "etag": rec.etag,
            "last_modified": rec.last_modified.isoformat(),
            "content_type": rec.content_type,
            "metadata": rec.metadata,
        }
        self._write_atomic(bdir / f"{base}.json", json.dumps(meta).encode("utf-8"))

    # -- buckets -----------------------------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        with self._lock:
            if bucket in self._buckets:
                return
            self._buckets[bucket] = {}
            self._sorted[bucket] = []
            if self.root is not None:
                (self.root / bucket).mkdir(parents=True, exist_ok=True)

    def has_bucket(self, bucket: str) -> bool:
        with self._lock:
            return bucket in self._buckets

    def buckets(self) -> list[str]:
        with self._lock:
            return sorted(self._buckets)

    def clear(self) -> None:
        """Remove every object (buckets stay)."""
        with self._lock:
            for bucket in list(self._buckets):
                for key in list(self._buckets[bucket]):
                    self.delete(bucket, key)

    # -- objects -----------------------------------------------------------------------------------------------
    def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectRecord:
        """Store an object (creating the bucket if needed). ``metadata`` names may carry the ``x-cos-meta-``
        prefix or not; they are stored without it, lower-cased."""
        meta: dict[str, str] = {}
        for k, v in (metadata or {}).items():
            name = k.lower()
            if name.startswith("x-cos-meta-"):
                name = name[len("x-cos-meta-") :]
            meta[name] = v
        data = bytes(data)
        rec = ObjectRecord(
            key=key,
            data=data,
            etag=f'"{hashlib.md5(data).hexdigest()}"',
            size=len(data),
            last_modified=datetime.now(timezone.utc).replace(microsecond=0),
            content_type=content_type or "application/octet-stream",
            metadata=meta,
        )
        with self._lock:
            self.create_bucket(bucket)
            objs = self._buckets[bucket]
            if key not in objs:
                bisect.insort(self._sorted[bucket], key)
            objs[key] = rec
            self._persist(bucket, rec)
        return rec

    def get(self, bucket: str, key: str) -> ObjectRecord | None:
        with self._lock:
            return self._buckets.get(bucket, {}).get(key)

    def delete(self, bucket: str, key: str) -> bool:
        with self._lock:
            objs = self._buckets.get(bucket)
            if objs is None or key not in objs:
                return False
            del objs[key]
            keys = self._sorted[bucket]
            i = bisect.bisect_left(keys, key)
            if i < len(keys) and keys[i] == key:
                keys.pop(i)
            if self.root is not None:
                base = self.root / bucket / _fname(key)
                for suffix in (".json", ".bin"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{base}{suffix}")
            return True

    def list(
        self, bucket: str, prefix: str = "", delimiter: str = "", marker: str = "", max_keys: int = 1000
    ) -> ListResult:
        """COS ListObjects semantics: keys in UTF-8 binary order after ``marker`` (exclusive) starting with
        ``prefix``; with a delimiter, keys sharing ``prefix + ... + delimiter`` roll up into one common prefix;
        objects and common prefixes together count against ``max_keys``."""
        with self._lock:
            objs = self._buckets.get(bucket, {})
            keys = self._sorted.get(bucket, [])
            start = max(bisect.bisect_right(keys, marker) if marker else 0, bisect.bisect_left(keys, prefix))
            if delimiter and marker.endswith(delimiter) and marker.startswith(prefix):
                # the marker is a common prefix handed out as NextMarker: resume after everything under it
                start = max(start, bisect.bisect_left(keys, marker + "\U0010ffff"))
            contents: list[ObjectRecord] = []
            prefixes: list[str] = []
            last = ""
            truncated = False
            i = start
            while i < len(keys):
                k = keys[i]
                if not k.startswith(prefix):
                    break
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                if delimiter:
                    pos = k.find(delimiter, len(prefix))
                    if pos >= 0:
                        cp = k[: pos + len(delimiter)]
                        prefixes.append(cp)
                        last = cp
                        # skip every key under this common prefix
                        i = bisect.bisect_left(keys, cp + "\U0010ffff", i)
                        continue
                contents.append(objs[k])
                last = k
                i += 1
            return ListResult(contents, prefixes, truncated, last if truncated else "")
