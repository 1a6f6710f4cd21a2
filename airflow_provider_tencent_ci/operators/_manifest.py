"""Large image batches: the per-item manifest (JSON lines) and the small summary that goes to XCom instead.

A batch of at most :data:`ITEM_DOCS_MAX_ITEMS` items whose documents fit in :data:`ITEM_DOCS_MAX_BYTES` returns
them as before (a list, one document per item, in item order). A larger batch returns :func:`BatchCollector.summary`:
the counts, the first :data:`SUMMARY_FAILURES` failures and where the manifest is; the manifest holds one JSON line
per item (the same document a small batch returns), in completion order, at :func:`manifest_key`.

Lines are spooled to a temporary file (in memory up to 1 MiB, then on disk) and uploaded once at the end, also
when the task fails part-way (the manifest then lists what was done).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# A batch larger than this streams its source listing and checks a rerun with one output listing (instead of one
# HEAD per item); a smaller one is planned in full before any paid call, as before.
PLANNED_BATCH_MAX_ITEMS = 200
ITEM_DOCS_MAX_ITEMS = 500  # a batch up to this size returns its per-item documents (300-400 bytes each) ...
ITEM_DOCS_MAX_BYTES = 256 * 1024  # ... unless they are longer than this (very long keys): then the summary
SUMMARY_MAX_BYTES = 64 * 1024  # the summary of a larger batch stays under this
SUMMARY_FAILURES = 10  # failures named in the summary (all of them are in the manifest)
ERROR_TEXT_MAX = 500  # characters of one failure's error text in the summary
MANIFEST_FOLDER = "_manifests"
_SPOOL_IN_MEMORY = 1024 * 1024


def manifest_key(folder: str, dag_id: str, task_id: str, run_id: str, map_index: int | None) -> str:
    """``<folder>/_manifests/<dag_id>/<task_id>/<run_id>[/<map_index>].jsonl`` (``folder``: the fixed folder of the
    first output template; a rerun of the same task instance replaces its manifest)."""
    root = manifest_root(folder)
    mapped = f"/{map_index}" if map_index is not None and map_index >= 0 else ""
    return f"{root}{dag_id}/{task_id}/{run_id}{mapped}.jsonl"


def task_manifests(folder: str, dag_id: str, task_id: str, map_index: int | None) -> tuple[str, Callable[[str], bool]]:
    """(prefix, matches): where every manifest of this task lives (all its runs), and which keys under it are this
    map index's (the layout of :func:`manifest_key`)."""
    prefix = f"{manifest_root(folder)}{dag_id}/{task_id}/"
    mapped = map_index is not None and map_index >= 0

    def matches(key: str) -> bool:
        rest = key[len(prefix) :]
        if not key.startswith(prefix) or not rest.endswith(".jsonl"):
            return False
        return rest.count("/") == 1 and rest.endswith(f"/{map_index}.jsonl") if mapped else "/" not in rest

    return prefix, matches


def recorded_outputs(lines: Iterable[bytes]) -> dict[tuple[str, str], tuple[str, str]]:
    """(bucket, key) -> (ETag, source) of every COS output a manifest records as this task's (processed or skipped):
    ``<role>_bucket`` / ``<role>_key`` / ``<role>_etag`` (``etag`` for ``output``), as the item documents hold them.
    Lines that are not such documents are passed over."""
    outputs: dict[tuple[str, str], tuple[str, str]] = {}
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if not isinstance(doc, dict) or doc.get("status") not in ("processed", "skipped"):
            continue
        source = doc.get("source")
        for name, key in doc.items():
            role = name.removesuffix("_key")
            if role == name or role == "source" or not isinstance(key, str):
                continue
            bucket = doc.get(f"{role}_bucket")
            etag = doc.get(f"{role}_etag") or (doc.get("etag") if role == "output" else None)
            if isinstance(bucket, str) and isinstance(etag, str) and isinstance(source, str):
                outputs[(bucket, key)] = (etag.strip('"'), source)
    return outputs


class PreviousOutputs:
    """What this task's newest earlier manifest (same map index, any run) records: a large batch's rerun proof that
    an output its listing holds is its own, without a HEAD for the output's ``x-cos-meta-source`` (a listing does
    not carry metadata). Read on a thread from the start of the batch, beside the output listing; an output it does
    not vouch for (not recorded, another ETag, another source) is HEADed as before. The same bytes under another
    owner pass the ETag check: then nothing is lost."""

    def __init__(self, load: Callable[[], dict[tuple[str, str], tuple[str, str]]]) -> None:
        self._outputs: dict[tuple[str, str], tuple[str, str]] = {}
        self._loaded = threading.Event()

        def run() -> None:
            try:
                self._outputs = load()
            finally:
                self._loaded.set()

        threading.Thread(target=run, name="tencent-ci-previous-manifest", daemon=True).start()

    def vouches(self, bucket: str, key: str, etag: str | None, source: str) -> bool:
        self._loaded.wait()
        return bool(etag) and self._outputs.get((bucket, key)) == (str(etag).strip('"'), source)


def manifest_root(folder: str) -> str:
    """Where every manifest of outputs under ``folder`` lives (never taken as a source)."""
    folder = folder.strip("/")
    return f"{folder}/{MANIFEST_FOLDER}/" if folder else f"{MANIFEST_FOLDER}/"


@dataclass(frozen=True)
class ManifestPlace:
    kind: str  # "cos" | "local"
    bucket: str | None
    target: str  # COS key or local path

    @property
    def label(self) -> str:
        return f"cos://{self.bucket}/{self.target}" if self.kind == "cos" else self.target


class BatchCollector:
    """Receives every item's document (the caller serialises ``add``, as ``run_items`` does): counts, keeps the
    first failures, spools manifest lines, and keeps the documents only while the batch may still return them in
    XCom (at most ``ITEM_DOCS_MAX_ITEMS``)."""

    def __init__(self) -> None:
        self.counts = {"processed": 0, "skipped": 0, "failed": 0}
        self.first_failures: list[dict[str, Any]] = []
        self._docs: dict[int, dict[str, Any]] | None = {}
        self._doc_bytes = 0
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, mode="w+b")  # noqa: SIM115

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, index: int, doc: dict[str, Any]) -> None:
        status = doc.get("status")
        if status not in self.counts:
            status = "failed"
        self.counts[status] += 1
        if status == "failed" and len(self.first_failures) < SUMMARY_FAILURES:
            failure = dict(doc)
            if isinstance(failure.get("error"), str):
                failure["error"] = failure["error"][:ERROR_TEXT_MAX]
            self.first_failures.append(failure)
        line = json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"
        self._spool.write(line)
        if self._docs is not None:
            self._doc_bytes += len(line) + 1
            if len(self._docs) >= ITEM_DOCS_MAX_ITEMS or self._doc_bytes > ITEM_DOCS_MAX_BYTES:
                self._docs = None  # too many for XCom: the manifest carries them
            else:
                self._docs[index] = doc

    def item_docs(self) -> list[dict[str, Any]] | None:
        """The documents in item order, or None when the batch outgrew XCom."""
        return None if self._docs is None else [self._docs[i] for i in sorted(self._docs)]

    def failed_docs(self) -> list[dict[str, Any]]:
        docs = self.item_docs()
        return [d for d in docs if d.get("status") == "failed"] if docs is not None else list(self.first_failures)

    def summary(self, place: ManifestPlace | None, **extra: Any) -> dict[str, Any]:
        """The XCom value of a large batch: counts, the first failures (fewer if needed to stay under
        :data:`SUMMARY_MAX_BYTES`) and where the manifest is."""
        doc = {
            **self.counts,
            "total": self.total,
            "failures": list(self.first_failures),
            "manifest": place.label if place else None,
            "manifest_bucket": place.bucket if place else None,
            "manifest_key": place.target if place and place.kind == "cos" else None,
            "manifest_path": place.target if place and place.kind == "local" else None,
            **extra,
        }
        while doc["failures"] and len(json.dumps(doc, default=str)) > SUMMARY_MAX_BYTES:
            doc["failures"].pop()
        return doc

    def lines(self) -> Any:
        """The spooled manifest, rewound (a binary file object)."""
        self._spool.flush()
        self._spool.seek(0)
        return self._spool

    def write_local(self, path: str) -> None:
        from airflow_provider_tencent_ci.operators._batch import write_atomic

        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        spool = self.lines()
        write_atomic(path, iter(lambda: spool.read(1024 * 1024), b""))

    def close(self) -> None:
        self._spool.close()
