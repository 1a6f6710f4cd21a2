"""Small synthetic inputs for the demo and the example-DAG tests (Pillow only, deterministic).

- portraits: a figure (head circle + neck + shoulders/body) on a plain or gentle vertical-gradient background;
- goods: a coloured object (box, bottle, ball) on white, as product shots are;
- a "video": a few KB shaped like an MP4 (``ftyp`` box + filler); the emulator does not decode video.

Everything is a pure function of its arguments, so a rerun uploads byte-identical objects (same ETag).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class SampleImage:
    name: str  # file name, e.g. "portrait-01.jpg"
    kind: str  # "portrait" | "goods"
    data: bytes
    content_type: str


# (background top, background bottom, skin, clothes, hair)
_PORTRAIT_STYLES: tuple[tuple[tuple[int, int, int], ...], ...] = (
    ((70, 130, 200), (70, 130, 200), (236, 196, 160), (200, 40, 60), (60, 40, 20)),
    ((40, 160, 90), (20, 110, 60), (200, 150, 110), (30, 30, 120), (20, 20, 20)),
    ((230, 230, 235), (180, 180, 200), (180, 120, 90), (240, 150, 20), (110, 70, 30)),
    ((120, 60, 140), (70, 30, 90), (250, 215, 185), (20, 140, 150), (200, 170, 90)),
)
_GOODS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("box", (220, 60, 40)),
    ("bottle", (30, 110, 200)),
    ("ball", (40, 170, 80)),
    ("box", (150, 60, 180)),
)


def _gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size, top)
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / max(1, height - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    return img


def portrait(index: int, size: tuple[int, int] = (240, 320)) -> Image.Image:
    """A head-and-shoulders figure, centred, touching the bottom edge like a real portrait crop."""
    bg_top, bg_bottom, skin, clothes, hair = _PORTRAIT_STYLES[index % len(_PORTRAIT_STYLES)]
    width, height = size
    img = _gradient(size, bg_top, bg_bottom)
    draw = ImageDraw.Draw(img)
    cx = width // 2 + (index % 3 - 1) * width // 12  # a little horizontal variety
    head_r = width // 7
    head_cy = height * 2 // 5
    # body: a rounded trapezoid from the shoulders down to the bottom edge
    shoulder_y = head_cy + head_r + height // 14
    draw.rounded_rectangle([cx - width // 3, shoulder_y, cx + width // 3, height + 20], radius=width // 8, fill=clothes)
    draw.rectangle([cx - head_r // 3, head_cy + head_r - 4, cx + head_r // 3, shoulder_y + 4], fill=skin)  # neck
    draw.ellipse([cx - head_r, head_cy - head_r, cx + head_r, head_cy + head_r], fill=skin)
    # hair: the top of the head
    draw.chord([cx - head_r - 3, head_cy - head_r - 6, cx + head_r + 3, head_cy + head_r // 2], 180, 360, fill=hair)
    # eyes and mouth, so face beauty has some detail to smooth
    eye_y = head_cy + head_r // 6
    for dx in (-head_r // 3, head_r // 3):
        draw.ellipse([cx + dx - 3, eye_y - 3, cx + dx + 3, eye_y + 3], fill=(30, 30, 30))
    draw.arc(
        [cx - head_r // 3, head_cy + head_r // 4, cx + head_r // 3, head_cy + head_r * 2 // 3],
        20,
        160,
        fill=(150, 40, 40),
        width=2,
    )
    return img


def goods(index: int, size: tuple[int, int] = (240, 240)) -> Image.Image:
    """A single coloured product on a white background."""
    shape, colour = _GOODS[index % len(_GOODS)]
    width, height = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cx, cy = width // 2, height // 2
    if shape == "box":
        draw.rectangle([cx - width // 4, cy - height // 5, cx + width // 4, cy + height // 4], fill=colour)
        darker = tuple(max(0, c - 60) for c in colour)
        draw.polygon(
            [
                (cx - width // 4, cy - height // 5),
                (cx - width // 6, cy - height // 3),
                (cx + width // 3, cy - height // 3),
                (cx + width // 4, cy - height // 5),
            ],
            fill=darker,
        )
    elif shape == "bottle":
        draw.rounded_rectangle(
            [cx - width // 8, cy - height // 6, cx + width // 8, cy + height // 3], radius=width // 16, fill=colour
        )
        draw.rectangle([cx - width // 24, cy - height // 3, cx + width // 24, cy - height // 6], fill=colour)
    else:
        r = min(width, height) // 4
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    return img


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=90)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


def portraits(count: int = 3, size: tuple[int, int] = (240, 320)) -> list[SampleImage]:
    return [
        SampleImage(f"portrait-{i + 1:02d}.jpg", "portrait", encode(portrait(i, size)), "image/jpeg")
        for i in range(count)
    ]


def goods_images(count: int = 2, size: tuple[int, int] = (240, 240)) -> list[SampleImage]:
    return [
        SampleImage(f"goods-{i + 1:02d}.png", "goods", encode(goods(i, size), "PNG"), "image/png") for i in range(count)
    ]


def fake_video(size: int = 4096) -> bytes:
    """An MP4-shaped blob: a valid ``ftyp`` box followed by an ``mdat`` box of deterministic filler."""
    ftyp_payload = b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    ftyp = struct.pack(">I", 8 + len(ftyp_payload)) + b"ftyp" + ftyp_payload
    filler_len = max(0, size - len(ftyp) - 8)
    filler = bytes((i * 31 + 7) % 256 for i in range(filler_len))
    return ftyp + struct.pack(">I", 8 + filler_len) + b"mdat" + filler


def write_local(directory: str, images: list[SampleImage]) -> list[str]:
    """Write images to ``directory`` (created if needed); returns the paths, in order."""
    from pathlib import Path

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for image in images:
        path = root / image.name
        if not path.exists() or path.read_bytes() != image.data:
            path.write_bytes(image.data)
        paths.append(str(path))
    return paths
