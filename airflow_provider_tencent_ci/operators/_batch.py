"""The engine shared by the image operators: sources, output templates, reruns, and the concurrent runner.

An image operator turns its parameters into a list of :class:`SourceItem` (one COS object, local file or URL each),
computes each item's deterministic output from a template (placeholders below), and hands a per-item function to
:func:`run_items`, which runs them on a bounded thread pool and returns one small JSON document per item.

Output templates are rendered by Jinja first (``{{ ds }}`` etc.), then these single-brace placeholders are filled
per item (see ``constants.OUTPUT_PLACEHOLDERS``):

- ``{key}``  the source key (``in/2024/cat.jpg``; a local file or URL: its path)
- ``{name}`` the file name (``cat.jpg``)
- ``{stem}`` the file name without extension (``cat``)
- ``{ext}``  the extension without the dot (``jpg``)
- ``{dir}``  the folder of the key without the trailing ``/`` (``in/2024``)

Example: ``output_key="matted/{{ ds }}/{stem}.png"``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass, field
from datetime import datetime, timezone
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_tencent_ci.common.pacing import throttle_listener
from airflow_provider_tencent_ci.constants import OUTPUT_SOURCE_METADATA
from airflow_provider_tencent_ci.exceptions import (
    ParameterValidationError,
    TencentCloudError,
    TencentCloudThrottlingError,
)

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

log = logging.getLogger(__name__)
TEMP_SUFFIX = ".part"

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


# -- sources ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceItem:
    """One image to process. ``kind`` is ``cos`` (bucket+key), ``local`` (path) or ``url``."""

    kind: str
    bucket: str | None = None
    key: str | None = None
    path: str | None = None
    url: str | None = None
    last_modified: datetime | None = None  # known from a listing; otherwise HEAD/stat when needed
    # A COS source's time once HEADed by ``source_mtime``: one HEAD per item however often a rerun asks (an item
    # lives for one execute, so the value never outlives the run). Not part of the item's identity.
    headed: dict[str, datetime | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def name_source(self) -> str:
        """What the output placeholders are computed from."""
        if self.kind == "cos":
            return self.key or ""
        if self.kind == "local":
            return Path(self.path or "").name
        return urlsplit(self.url or "").path.lstrip("/")

    @property
    def label(self) -> str:
        """How the item is named in XCom, logs and errors."""
        if self.kind == "cos":
            return f"cos://{self.bucket}/{self.key}"
        if self.kind == "local":
            return str(self.path)
        return str(self.url)

    def lineage(self) -> tuple[str, str]:
        """OpenLineage (namespace, name)."""
        if self.kind == "cos":
            return f"cos://{self.bucket}", str(self.key)
        if self.kind == "local":
            return "file", str(Path(self.path or "").resolve())
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.netloc}", parts.path


def placeholders(item: SourceItem) -> dict[str, str]:
    key = item.name_source
    name = key.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # "README" or ".hidden": no extension
        stem, ext = name, ""
    return {"key": key, "name": name, "stem": stem, "ext": ext, "dir": key.rsplit("/", 1)[0] if "/" in key else ""}


def fill_template(template: str, item: SourceItem) -> str:
    values = placeholders(item)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def cos_items(
    hook: CIHook,
    bucket: str,
    *,
    key: str | None,
    keys: Sequence[str] | None,
    prefix: str | None,
    modified_after: datetime | None,
    modified_before: datetime | None,
) -> list[SourceItem]:
    """COS sources: one key, a list of keys, or every object under a prefix within [after, before)."""
    if key is not None:
        return [SourceItem("cos", bucket=bucket, key=key)]
    if keys is not None:
        return [SourceItem("cos", bucket=bucket, key=k) for k in dict.fromkeys(keys)]
    listing = prefix_items(hook, bucket, prefix or "", modified_after=modified_after, modified_before=modified_before)
    return list(listing)


def prefix_items(
    hook: CIHook,
    bucket: str,
    prefix: str,
    *,
    modified_after: datetime | None,
    modified_before: datetime | None,
    exclude_prefix: str | None = None,
    page_size: int = 1000,
) -> Iterator[SourceItem]:
    """Every object under ``prefix`` within [after, before), lazily: the next listing page is fetched only when
    the items of the previous one were taken. Folder markers and objects under ``exclude_prefix`` (the manifests)
    are not sources."""
    for obj in hook.list_objects(bucket, prefix=prefix, max_keys=page_size):
        k = obj["Key"]
        if k.endswith("/") or (exclude_prefix and k.startswith(exclude_prefix)):
            continue
        modified = obj.get("LastModified")
        if modified_after is not None and (modified is None or modified < modified_after):
            continue
        if modified_before is not None and (modified is None or modified >= modified_before):
            continue
        yield SourceItem("cos", bucket=bucket, key=k, last_modified=modified)


def local_items(param: str, paths: str | Sequence[str]) -> list[SourceItem]:
    """Local sources: a file, a list of files, or a directory (its files, sorted, not recursive)."""
    entries = [paths] if isinstance(paths, str) else list(paths)
    items: list[SourceItem] = []
    for p in entries:
        path = Path(p)
        if path.is_dir():
            # A folder's dotfiles and temp files (a killed run's ``.part``) are not sources.
            items.extend(
                SourceItem("local", path=str(c))
                for c in sorted(path.iterdir())
                if c.is_file() and not c.name.startswith(".") and not c.name.endswith(TEMP_SUFFIX)
            )
        elif path.is_file():
            items.append(SourceItem("local", path=str(path)))
        else:
            raise ParameterValidationError(param, p, "must name an existing local file or directory")
    return items


def check_unique_outputs(param: str, outputs: Iterable[str]) -> None:
    seen: set[str] = set()
    for out in outputs:
        if out in seen:
            raise ParameterValidationError(param, out, "two sources map to the same output; use {key} or {name}")
        seen.add(out)


# -- where outputs really go --------------------------------------------------------------------------------------
def cos_key(key: str) -> str:
    """The object a key given to the COS SDK names: the SDK drops one leading '/' (qcloud_cos cos_comm.format_path)."""
    return key[1:] if key.startswith("/") else key


def fileid_key(fileid: str, source_key: str) -> str:
    """The object a Pic-Operations ``fileid`` names: relative to the source's folder unless it starts with '/'
    (docs/ARCHITECTURE.md; the CI image seeds' "Pic-Operations" section)."""
    if fileid.startswith("/"):
        return fileid.lstrip("/")
    folder = source_key.rsplit("/", 1)[0] if "/" in source_key else ""
    return f"{folder}/{fileid}" if folder else fileid


def template_base(template: str) -> str:
    """The fixed folder of a local path template: the folder of the text before its first placeholder."""
    head = template.split("{", 1)[0]
    return os.path.realpath(os.path.dirname(head) or ".")


def contained_path(param: str, template: str, item: SourceItem) -> str:
    """The filled local path, resolved; refused unless it stays under the template's fixed folder.

    ``{key}`` and ``{dir}`` come from a COS key or a URL path: ``..`` segments (or a symlink) must not lead out.
    """
    filled = fill_template(template, item)
    base = template_base(template)
    resolved = os.path.realpath(filled)
    if os.path.commonpath([base, resolved]) != base or resolved == base:
        raise ParameterValidationError(
            param, filled, f"must stay inside {base} (the folder before the first placeholder of {template!r})"
        )
    return filled


# -- reruns -------------------------------------------------------------------------------------------------------
def source_mtime(hook: CIHook, item: SourceItem) -> datetime | None:
    """When the source last changed: listing date, HEAD, or file mtime; None when unknown (a URL)."""
    if item.last_modified is not None:
        return item.last_modified
    if item.kind == "cos":
        if "Last-Modified" not in item.headed:
            head = hook.head_object(item.bucket or "", item.key or "")
            item.headed["Last-Modified"] = head.get("Last-Modified") if head else None
        return item.headed["Last-Modified"]
    if item.kind == "local":
        return datetime.fromtimestamp(os.stat(item.path or "").st_mtime, tz=timezone.utc)
    return None


def is_fresh(output_mtime: datetime | None, source_time: datetime | None) -> bool:
    """An existing output is reusable when it is not older than its source (second precision, as COS reports)."""
    if output_mtime is None:
        return False
    if source_time is None:
        return True  # a URL source has no date: an existing output is the result of this deterministic run
    return output_mtime >= source_time.replace(microsecond=0)


def cos_output_fresh(hook: CIHook, head: dict[str, Any] | None, item: SourceItem) -> dict[str, Any] | None:
    """The output's HEAD when it can be reused (not older than its source, HEADed when needed), else None."""
    if not head:
        return None
    return head if is_fresh(head.get("Last-Modified"), source_mtime(hook, item)) else None


def source_tag(item: SourceItem) -> str:
    """The item as an ``x-cos-meta-source`` value (HTTP headers carry ASCII: the label percent-encoded)."""
    return quote(item.label, safe=":/")


def output_owner(head: dict[str, Any] | None) -> str | None:
    """The source an existing output records (its ``x-cos-meta-source``, decoded), None when untagged or absent."""
    owner = (head or {}).get(f"x-cos-meta-{OUTPUT_SOURCE_METADATA}")
    return unquote(owner) if owner else None


def check_output_owner(param: str, key: str, head: dict[str, Any] | None, item: SourceItem) -> None:
    """An existing output recorded as made from another source fails the item, naming both sources."""
    owner = output_owner(head)
    if owner and owner != item.label:
        rule = f"already holds the output of {owner}; {item.label} maps to the same output"
        raise ParameterValidationError(param, key, rule)


class OutputListing:
    """The objects under the output prefixes, key -> (LastModified, Size, ETag) as ListObjects reports them: a
    rerun's "already done" check without a HEAD per item.

    ``start`` lists the prefixes (one request per page; a prefix inside another is not listed twice) on a thread
    while the batch runs, and ``lookup`` waits only until the listing has passed the key it asks for: ListObjects
    returns keys in UTF-8 binary order (the ``Marker`` paging of ``hooks/cos_objects.py`` relies on the same order;
    the emulator's store restates it), which is the order of Python strings, so items start after the first page,
    not after the last. A listing that fails answers "unknown" from then on (the
    caller HEADs that output instead, as a small batch does)."""

    def __init__(self, bucket: str, prefixes: Iterable[str]) -> None:
        kept: list[str] = []
        for prefix in sorted(set(prefixes)):
            if not any(prefix.startswith(k) for k in kept):
                kept.append(prefix)
        self.bucket = bucket
        self.prefixes = tuple(kept)
        self.entries: dict[str, tuple[datetime | None, int | None, str | None]] = {}
        self._reached: dict[str, str | None] = dict.fromkeys(kept, "")  # last key listed; None: prefix complete
        self._failed = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self, hook: CIHook, *, page_size: int = 1000) -> OutputListing:
        self._thread = threading.Thread(
            target=self._fill, args=(hook, page_size), name="tencent-ci-output-listing", daemon=True
        )
        self._thread.start()
        return self

    def _fill(self, hook: CIHook, page_size: int) -> None:
        try:
            for prefix in self.prefixes:
                page: list[dict[str, Any]] = []
                for obj in hook.list_objects(self.bucket, prefix=prefix, max_keys=page_size):
                    page.append(obj)
                    if len(page) >= page_size and not self._publish(prefix, page):
                        return
                if not self._publish(prefix, page, complete=True):
                    return
        except Exception as exc:  # the listing only saves requests: each output is HEADed instead
            log.warning("Listing the outputs failed (%s); each output is HEADed instead", exc)
            with self._cond:
                self._failed = True
                self._cond.notify_all()

    def _publish(self, prefix: str, page: list[dict[str, Any]], *, complete: bool = False) -> bool:
        """Add one page (and wake the items waiting for it); False once the batch is over."""
        with self._cond:
            if self._closed:
                return False
            for obj in page:
                size = obj.get("Size")
                modified, etag = obj.get("LastModified"), obj.get("ETag")
                self.entries[obj["Key"]] = (modified, size if isinstance(size, int) else None, etag)
            self._reached[prefix] = None if complete else page[-1]["Key"]
            page.clear()
            self._cond.notify_all()
            return True

    def lookup(self, bucket: str, key: str) -> tuple[bool, dict[str, Any] | None]:
        """(known, head): whether the listing answers for this output, and the listed object in ``head_object``'s
        shape (None: it does not exist; no x-cos-meta-*: a listing does not carry them)."""
        prefix = next((p for p in self.prefixes if key.startswith(p)), None) if bucket == self.bucket else None
        if prefix is None:
            return False, None
        with self._cond:
            while not self._failed and (reached := self._reached[prefix]) is not None and reached < key:
                self._cond.wait()
            if self._failed:
                return False, None
            entry = self.entries.get(key)
        if entry is None:
            return True, None
        modified, size, etag = entry
        return True, {"ETag": etag, "Content-Length": size, "Last-Modified": modified}

    def close(self) -> None:
        """Stop listing (the batch is over) and wait for the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()


def local_output_fresh(hook: CIHook, path: str, item: SourceItem) -> bool:
    try:
        mtime = datetime.fromtimestamp(os.stat(path).st_mtime, tz=timezone.utc)
    except FileNotFoundError:
        return False
    return is_fresh(mtime, source_mtime(hook, item))


# -- local files --------------------------------------------------------------------------------------------------
def write_atomic(path: str, chunks: Iterable[bytes]) -> int:
    """Stream chunks to ``path`` through a dot-prefixed temp file in the same folder, renamed at the end.

    A failure part-way removes the temp file: the destination is either the old file or the complete new one.
    Temp files a killed earlier run left for the same target are removed first.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob_escape(target.name)}.*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")
    size = 0
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                size += len(chunk)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


class SpooledFile:
    """A named, dot-prefixed temp file for a streamed body on its way to COS (never the whole body in memory)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.path = ""
        self.size = 0

    PREFIX = ".tencent-ci-"
    STALE_AFTER_SECONDS = 24 * 3600  # a spool this old was left by a killed task (a live upload is far shorter)

    def __enter__(self) -> SpooledFile:
        self.remove_stale()
        fd, self.path = tempfile.mkstemp(prefix=self.PREFIX, suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in self.chunks:
                    fh.write(chunk)
                    self.size += len(chunk)
        except BaseException:
            os.unlink(self.path)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        Path(self.path).unlink(missing_ok=True)

    @classmethod
    def remove_stale(cls) -> None:
        now = time.time()
        for path in Path(tempfile.gettempdir()).glob(f"{cls.PREFIX}*{TEMP_SUFFIX}"):
            try:
                if now - path.stat().st_mtime > cls.STALE_AFTER_SECONDS:
                    path.unlink()
            except OSError:  # gone already, or another user's
                continue


# -- the concurrent runner ----------------------------------------------------------------------------------------
class AdaptiveLimiter:
    """A concurrency limit that backs off when the service throttles and creeps back up on success (AIMD).

    As TCP congestion control: one throttle cuts the limit to ``DECREASE`` of itself, but only once per window of
    calls. ``acquire`` returns the window a call started in; a throttle of a call that started before the last cut
    belongs to the burst that cut was the answer to and is not counted again (cutting on every throttle of a
    burst collapses the limit to 1). Increase: +1 after ``limit`` successes, about one per window.
    """

    DECREASE = 0.75  # a halving leaves the batch at ~75 % of the service's limit on average; 0.75 at ~87 %

    def __init__(self, limit: int) -> None:
        self.max_limit = limit
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.decreases = 0
        self._window = 0
        self._successes = 0
        self._cond = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns the window the call starts in (give it back to ``release``)."""
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return self._window

    def throttled(self, window: int) -> None:
        """A call that started in ``window`` was throttled (also an attempt the hook then retried by itself)."""
        with self._cond:
            if window == self._window:  # the first throttle since the last cut
                self.limit = max(1, int(self.limit * self.DECREASE))
                self._window += 1
                self.decreases += 1
                self._successes = 0

    def release(self, window: int, *, throttled: bool) -> None:
        if throttled:
            self.throttled(window)
        with self._cond:
            self.in_flight -= 1
            if not throttled:
                self._successes += 1
                if self.limit < self.max_limit and self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()


@dataclass
class BatchOutcome:
    results: list[dict[str, Any]]  # in item order; empty when the documents went to ``on_result``
    peak_concurrency: int
    limit_cuts: int = 0  # how often throttling cut the concurrency limit

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r.get("status") == "failed"]


def failure_doc(item: SourceItem, exc: BaseException) -> dict[str, Any]:
    doc: dict[str, Any] = {"source": item.label, "status": "failed", "error": str(exc)}
    if isinstance(exc, TencentCloudError):
        doc["error_code"] = exc.code
        doc["request_id"] = exc.request_id
    elif isinstance(exc, ParameterValidationError):
        doc["error_code"] = "ParameterValidation"
    return doc


def run_items(
    items: Iterable[SourceItem],
    fn: Callable[[SourceItem], dict[str, Any]],
    *,
    max_concurrency: int,
    on_result: Callable[[int, dict[str, Any]], None] | None = None,
    throttle_rounds: int = 3,
    throttle_pause: float = 0.5,
    logger: Any = None,
) -> BatchOutcome:
    """Run ``fn`` on every item with at most ``max_concurrency`` in flight; never raises for an item.

    ``items`` may be a lazy iterable (a listing still being fetched): a producer thread feeds a queue of at most
    ``2 * max_concurrency`` items, so work starts with the first item and memory is bounded by what is in flight.
    Each result goes to ``on_result(index, doc)`` as it completes (called under a lock), or, without it, into
    ``BatchOutcome.results`` in item order. An error raised by ``items`` itself is re-raised once the items already
    taken have finished.

    Each item is tried once (the hooks already retry transient errors with backoff). An item that still ends in
    throttling is put back at the end of the queue after the limit is reduced, up to ``throttle_rounds`` times.
    """
    logger = logger or log
    collected: dict[int, dict[str, Any]] = {}
    size_hint = len(items) if isinstance(items, Sized) else max_concurrency
    limiter = AdaptiveLimiter(max(1, min(max_concurrency, size_hint or 1)))
    cond = threading.Condition()
    ready: deque[tuple[int, SourceItem, int]] = deque()
    capacity = 2 * limiter.max_limit
    state = {"producing": True, "outstanding": 0}
    listing_error: list[BaseException] = []

    def deliver(index: int, doc: dict[str, Any]) -> None:
        with cond:
            if on_result is not None:
                on_result(index, doc)
            else:
                collected[index] = doc
            state["outstanding"] -= 1
            cond.notify_all()

    def produce() -> None:
        try:
            for index, item in enumerate(items):
                with cond:
                    while len(ready) >= capacity:
                        cond.wait()
                    ready.append((index, item, 0))
                    state["outstanding"] += 1
                    cond.notify_all()
        except BaseException as exc:  # the listing failed part-way: finish what was taken, then report it
            listing_error.append(exc)
        finally:
            with cond:
                state["producing"] = False
                cond.notify_all()

    def next_item() -> tuple[int, SourceItem, int] | None:
        with cond:
            while not ready:
                if not state["producing"] and state["outstanding"] == 0:
                    return None
                cond.wait()
            entry = ready.popleft()
            cond.notify_all()
            return entry

    def worker() -> None:
        while (entry := next_item()) is not None:
            index, item, rounds = entry
            window = limiter.acquire()
            # The hook retries throttled attempts itself; each one still cuts the limit (once per window).
            throttle_listener.set(functools.partial(limiter.throttled, window))
            throttled = False
            doc: dict[str, Any] | None = None
            try:
                doc = fn(item)
            except TencentCloudThrottlingError as exc:
                throttled = True
                if rounds + 1 < throttle_rounds:
                    logger.warning("Throttled on %s; retrying later at lower concurrency", item.label)
                    with cond:
                        ready.append((index, item, rounds + 1))
                        cond.notify_all()
                else:
                    doc = failure_doc(item, exc)
            except Exception as exc:  # one item's failure must not stop the others
                logger.warning("Item %s failed: %s", item.label, exc)
                doc = failure_doc(item, exc)
            finally:
                limiter.release(window, throttled=throttled)
            if doc is not None:
                deliver(index, doc)
            if throttled and rounds + 1 < throttle_rounds:
                time.sleep(throttle_pause * (rounds + 1))

    producer = threading.Thread(target=produce, name="tencent-ci-image-listing", daemon=True)
    workers = [
        threading.Thread(target=worker, name=f"tencent-ci-image-{n}", daemon=True) for n in range(limiter.max_limit)
    ]
    producer.start()
    for t in workers:
        t.start()
    producer.join()
    for t in workers:
        t.join()
    if listing_error:
        raise listing_error[0]
    return BatchOutcome([collected[i] for i in sorted(collected)], limiter.peak, limiter.decreases)


def chunks_of(iterable: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in iterable:
        if chunk:
            yield chunk
