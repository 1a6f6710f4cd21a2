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

import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_tencent_ci.constants import (
    IMAGE_MAX_CONCURRENCY_LIMIT,
    OUTPUT_PLACEHOLDERS,
    OUTPUT_PLACEHOLDERS_PER_ITEM,
    IfExists,
)
from airflow_provider_tencent_ci.exceptions import (
    ParameterValidationError,
    TencentCloudError,
    TencentCloudThrottlingError,
)
from airflow_provider_tencent_ci.validation import check_choice, check_int_range, is_templated

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def pending(value: Any) -> bool:
    """True while a value is not known yet: a Jinja string or an XComArg (checked again after rendering)."""
    if is_templated(value):
        return True
    from airflow.sdk import XComArg

    return isinstance(value, XComArg)


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


def check_output_template(param: str, template: Any, *, many: bool) -> None:
    """Unknown placeholders are refused; a template for many sources must differ per item."""
    if template is None or pending(template):
        return
    if not isinstance(template, str) or not template.strip():
        raise ParameterValidationError(param, template, "must be a non-empty string")
    names = _PLACEHOLDER.findall(template)
    unknown = [n for n in names if n not in OUTPUT_PLACEHOLDERS]
    if unknown:
        raise ParameterValidationError(
            param, template, f"unknown placeholder {{{unknown[0]}}}; allowed: {', '.join(OUTPUT_PLACEHOLDERS)}"
        )
    if many and not any(n in OUTPUT_PLACEHOLDERS_PER_ITEM for n in names):
        raise ParameterValidationError(
            param,
            template,
            "must contain {key}, {name} or {stem} when processing many sources (else every item gets one output)",
        )


def fill_template(template: str, item: SourceItem) -> str:
    values = placeholders(item)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def parse_time(param: str, value: Any) -> datetime | None:
    """A modified-time bound: a datetime or an ISO-8601 string (e.g. ``{{ data_interval_start }}``).

    ``None``, ``""`` and ``"None"`` (what Jinja renders for a missing data interval) mean no bound.
    """
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                import pendulum

                parsed = pendulum.parse(value.strip())  # type: ignore[assignment]
            except Exception:
                raise ParameterValidationError(param, value, "must be a datetime or an ISO-8601 string") from None
        if not isinstance(parsed, datetime):
            raise ParameterValidationError(param, value, "must be a datetime or an ISO-8601 string")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise ParameterValidationError(param, value, "must be a datetime or an ISO-8601 string")


def check_key_list(param: str, value: Any) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise ParameterValidationError(param, value, "must be a non-empty list of object keys")
    for v in value:
        if not isinstance(v, str) or not v.strip() or v.endswith("/"):
            raise ParameterValidationError(param, v, "every entry must be a non-empty object key not ending in '/'")
    return list(value)


def check_if_exists(value: Any) -> None:
    if value is not None and not pending(value):
        check_choice("if_exists", value, [e.value for e in IfExists])


def check_concurrency(value: Any) -> int | None:
    if pending(value):
        return None
    return check_int_range("max_concurrency", value, 1, IMAGE_MAX_CONCURRENCY_LIMIT)


def check_bool(param: str, value: Any) -> None:
    if not pending(value) and not isinstance(value, bool) and value not in ("True", "False", "true", "false"):
        raise ParameterValidationError(param, value, "must be a boolean")


def as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


def cos_items(
    hook: Any,
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
    items: list[SourceItem] = []
    for obj in hook.list_objects(bucket, prefix=prefix or ""):
        k = obj["Key"]
        if k.endswith("/"):  # a folder marker, not an image
            continue
        modified = obj.get("LastModified")
        if modified_after is not None and (modified is None or modified < modified_after):
            continue
        if modified_before is not None and (modified is None or modified >= modified_before):
            continue
        items.append(SourceItem("cos", bucket=bucket, key=k, last_modified=modified))
    return items


def local_items(param: str, paths: str | Sequence[str]) -> list[SourceItem]:
    """Local sources: a file, a list of files, or a directory (its files, sorted, not recursive)."""
    entries = [paths] if isinstance(paths, str) else list(paths)
    items: list[SourceItem] = []
    for p in entries:
        path = Path(p)
        if path.is_dir():
            items.extend(SourceItem("local", path=str(c)) for c in sorted(path.iterdir()) if c.is_file())
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


# -- reruns -------------------------------------------------------------------------------------------------------
def source_mtime(hook: Any, item: SourceItem) -> datetime | None:
    """When the source last changed: listing date, HEAD, or file mtime; None when unknown (a URL)."""
    if item.last_modified is not None:
        return item.last_modified
    if item.kind == "cos":
        head = hook.head_object(item.bucket, item.key)
        return head.get("Last-Modified") if head else None
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


def cos_output_fresh(hook: Any, bucket: str, key: str, item: SourceItem) -> dict[str, Any] | None:
    """HEAD the output (and the source when needed): the output's HEAD when it can be reused, else None."""
    head = hook.head_object(bucket, key)
    if not head:
        return None
    return head if is_fresh(head.get("Last-Modified"), source_mtime(hook, item)) else None


def local_output_fresh(hook: Any, path: str, item: SourceItem) -> bool:
    try:
        mtime = datetime.fromtimestamp(os.stat(path).st_mtime, tz=timezone.utc)
    except FileNotFoundError:
        return False
    return is_fresh(mtime, source_mtime(hook, item))


# -- local files --------------------------------------------------------------------------------------------------
def write_atomic(path: str, chunks: Iterable[bytes]) -> int:
    """Stream chunks to ``path`` through a temp file in the same folder, renamed at the end.

    A failure part-way removes the temp file: the destination is either the old file or the complete new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
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


class spooled_file:  # lower-case: used like the tempfile context managers
    """A named temp file for a streamed body on its way to COS (never the whole body in memory)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.path = ""
        self.size = 0

    def __enter__(self) -> spooled_file:
        fd, self.path = tempfile.mkstemp(prefix="tencent-ci-", suffix=".part")
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

    def release(self, window: int, *, throttled: bool) -> None:
        with self._cond:
            self.in_flight -= 1
            if throttled:
                if window == self._window:  # the first throttle since the last cut
                    self.limit = max(1, int(self.limit * self.DECREASE))
                    self._window += 1
                    self.decreases += 1
                    self._successes = 0
            else:
                self._successes += 1
                if self.limit < self.max_limit and self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
            self._cond.notify_all()


@dataclass
class BatchOutcome:
    results: list[dict[str, Any]]
    peak_concurrency: int

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
    items: Sequence[SourceItem],
    fn: Callable[[SourceItem], dict[str, Any]],
    *,
    max_concurrency: int,
    throttle_rounds: int = 3,
    throttle_pause: float = 0.5,
    logger: Any = None,
) -> BatchOutcome:
    """Run ``fn`` on every item with at most ``max_concurrency`` in flight; never raises for an item.

    Each item is tried once (the hooks already retry transient errors with backoff). An item that still ends in
    throttling is put back at the end of the queue after the limit is reduced, up to ``throttle_rounds`` times.
    """
    logger = logger or log
    results: list[dict[str, Any] | None] = [None] * len(items)
    queue: deque[tuple[int, int]] = deque((i, 0) for i in range(len(items)))
    lock = threading.Lock()
    limiter = AdaptiveLimiter(max(1, min(max_concurrency, len(items) or 1)))

    def next_item() -> tuple[int, int] | None:
        with lock:
            return queue.popleft() if queue else None

    def worker() -> None:
        while (entry := next_item()) is not None:
            index, rounds = entry
            item = items[index]
            window = limiter.acquire()
            throttled = False
            try:
                results[index] = fn(item)
            except TencentCloudThrottlingError as exc:
                throttled = True
                if rounds + 1 < throttle_rounds:
                    logger.warning("Throttled on %s; retrying later at lower concurrency", item.label)
                    with lock:
                        queue.append((index, rounds + 1))
                else:
                    results[index] = failure_doc(item, exc)
            except Exception as exc:  # one item's failure must not stop the others
                logger.warning("Item %s failed: %s", item.label, exc)
                results[index] = failure_doc(item, exc)
            finally:
                limiter.release(window, throttled=throttled)
            if throttled and rounds + 1 < throttle_rounds:
                time.sleep(throttle_pause * (rounds + 1))

    workers = [
        threading.Thread(target=worker, name=f"tencent-ci-image-{n}", daemon=True) for n in range(limiter.max_limit)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return BatchOutcome([r if r is not None else {"status": "failed"} for r in results], limiter.peak)


def chunks_of(iterable: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in iterable:
        if chunk:
            yield chunk
