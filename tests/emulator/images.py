"""Test images for the emulator's tests: a textured synthetic portrait, and a pixel-difference measure."""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageDraw


def portrait(width: int = 240, height: int = 300, fmt: str = "JPEG") -> bytes:
    """A green background with a skin-coloured head and a blue body touching the bottom edge, plus texture."""
    img = Image.new("RGB", (width, height), (40, 160, 70))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.35, height * 0.08, width * 0.65, height * 0.38), fill=(230, 190, 160))
    draw.rectangle((width * 0.25, height * 0.38, width * 0.75, height), fill=(50, 60, 200))
    for i in range(0, width, 7):  # deterministic texture so smoothing has something to smooth
        for j in range(0, height, 5):
            r, g, b = img.getpixel((i, j))  # type: ignore[misc]
            img.putpixel((i, j), (min(255, r + 30), max(0, g - 30), min(255, b + 20)))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    hist = diff.histogram()
    total = sum(i * n for c in range(3) for i, n in enumerate(hist[c * 256 : (c + 1) * 256]))
    return total / (a.width * a.height * 3)
