"""What the demo, the example-DAG tests and the live tests share: inputs, where they go, how a run is set up.

Everything here talks to COS through the provider's own ``CIHook``, so the same code seeds the emulator and a real
bucket. Seeding is idempotent: an object whose content is already there is not uploaded again, which keeps its
LastModified (the daily DAG's window and the skip-if-fresh rule both depend on it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from demo import sample_data

DEFAULT_BUCKET = "examplebucket-1250000000"
PORTRAIT_PREFIX = "incoming/portraits/"
GOODS_PREFIX = "incoming/goods/"
VIDEO_KEY = "videos/dance.mp4"
# Operations the real service bills for (the emulator counts them per operation name).
PAID_OPERATIONS = ("CIProcess", "PicOperationsUpload", "ImageProcess", "CreateJob", "SegmentCustomizedPortraitPic")


@dataclass
class Seeded:
    key: str
    uploaded: bool  # False: identical content was already there
    last_modified: datetime | None


def put_if_changed(hook: Any, bucket: str, key: str, data: bytes, content_type: str) -> Seeded:
    head = hook.head_object(bucket, key)
    md5 = hashlib.md5(data).hexdigest()
    if head and str(head.get("ETag") or "").strip('"') == md5 and head.get("Content-Length") == len(data):
        return Seeded(key, False, head.get("Last-Modified"))
    hook.put_object(bucket, key, data, content_type=content_type)
    head = hook.head_object(bucket, key) or {}
    return Seeded(key, True, head.get("Last-Modified"))


def seed_daily_inputs(
    hook: Any, bucket: str, *, portraits: int = 3, goods: int = 2, prefix: str = ""
) -> dict[str, list[Seeded]]:
    """Portraits under ``incoming/portraits/``, product shots under ``incoming/goods/``."""
    out: dict[str, list[Seeded]] = {"portraits": [], "goods": []}
    for image in sample_data.portraits(portraits):
        out["portraits"].append(
            put_if_changed(hook, bucket, prefix + PORTRAIT_PREFIX + image.name, image.data, image.content_type)
        )
    for image in sample_data.goods_images(goods):
        out["goods"].append(
            put_if_changed(hook, bucket, prefix + GOODS_PREFIX + image.name, image.data, image.content_type)
        )
    return out


def seed_video(hook: Any, bucket: str, key: str = VIDEO_KEY) -> Seeded:
    return put_if_changed(hook, bucket, key, sample_data.fake_video(), "video/mp4")


def write_studio_inputs(directory: str | Path, count: int = 2) -> list[str]:
    """Local portraits for the studio DAG's upload mode (rewritten only when their content changed)."""
    return sample_data.write_local(str(directory), sample_data.portraits(count, size=(200, 260)))


def daily_logical_date(seeded: dict[str, list[Seeded]]) -> datetime:
    """The ``dag.test()`` logical date whose data interval is the UTC day the inputs arrived on.

    With a cron data-interval timetable a manual/test run's interval ends at its logical date, so the day of
    arrival D is processed by logical date D + 1 day (00:00 UTC).
    """
    times = [s.last_modified for group in seeded.values() for s in group if s.last_modified is not None]
    arrived = min(times) if times else datetime.now(timezone.utc)
    day = arrived.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def paid_calls(snapshot_before: dict[str, int], snapshot_after: dict[str, int]) -> dict[str, int]:
    """Per-operation difference of paid calls between two ``{operation: count}`` maps."""
    diff = {op: snapshot_after.get(op, 0) - snapshot_before.get(op, 0) for op in PAID_OPERATIONS}
    return {op: n for op, n in diff.items() if n}


def paid_counts(emulator: Any) -> dict[str, int]:
    return {op: emulator.stats.count(op) for op in PAID_OPERATIONS}
