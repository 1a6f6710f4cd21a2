"""Helpers for the image operator tests: small generated images, DAG runs, XCom reads."""

from __future__ import annotations

import io
from typing import Any

import pendulum
from PIL import Image

BUCKET = "examplebucket-1250000000"
START = pendulum.datetime(2024, 1, 1, tz="UTC")


def subject_png(size: int = 32, colour: tuple[int, int, int] = (200, 30, 30), fmt: str = "PNG") -> bytes:
    """A uniform background with a coloured square in the middle: the emulator's matting finds the square."""
    img = Image.new("RGB", (size, size), (245, 245, 245))
    lo, hi = size // 4, size - size // 4
    for x in range(lo, hi):
        for y in range(lo, hi):
            img.putpixel((x, y), colour)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def alpha_is_varied(img: Image.Image) -> bool:
    assert "A" in img.getbands(), f"no alpha channel in mode {img.mode}"
    lo, hi = img.getchannel("A").getextrema()
    return lo != hi


def xcom(dr: Any, task_id: str, key: str = "return_value", map_index: int | None = None) -> Any:
    ti = dr.get_task_instance(task_id, map_index=map_index if map_index is not None else -1)
    assert ti is not None, f"no task instance {task_id}"
    return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)


def state(dr: Any, task_id: str, map_index: int = -1) -> str:
    ti = dr.get_task_instance(task_id, map_index=map_index)
    return str(ti.state)


def paid(emu: Any) -> dict[str, int]:
    """Counts of the billable operations."""
    ops = ("ImageProcess", "PicOperationsUpload", "CIProcess", "SegmentCustomizedPortraitPic")
    return {op: emu.stats.count(operation=op) for op in ops}
