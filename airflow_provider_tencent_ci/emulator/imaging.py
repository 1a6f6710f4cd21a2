"""Pixel work of the emulator (Pillow only): matting, face beauty, portrait part segmentation.

The outputs are computed from the input pixels so that code under test sees real, input-dependent images:

- the subject mask estimates the background colour from the border pixels and turns each pixel's colour
  distance from it into alpha with a soft threshold, then cleans and slightly blurs the mask;
- face beauty blends the image with a median-filtered and blurred copy, in proportion to ``strength``;
- part segmentation approximates face/body parts by fixed regions of the subject's bounding box.

None of this is a model of what the real service computes; it keeps the documented shapes (PNG with alpha,
output size with padding, labelled rectangles) and input-dependence, which is what callers can notice.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

# Work on a downscaled copy for the mask: the result is upscaled, which also smooths its edges.
_MASK_WORK_SIDE = 512
# Pixels with mask values above this count as "subject" for bounding boxes.
_SUBJECT_LEVEL = 64
# Refuse decoding absurd images (decompression bombs) long before Pillow's own hard limit.
MAX_DECODE_PIXELS = 64_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass
class ImageInfo:
    format: str  # Pillow format name: "PNG", "JPEG", "BMP", "GIF", ...
    width: int
    height: int


def probe(data: bytes) -> ImageInfo:
    """Format and size from the header only (no pixel decoding). Raises ImageDecodeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return ImageInfo(str(img.format or ""), int(img.width), int(img.height))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot identify image: {exc}") from None


def decode_image(data: bytes) -> Image.Image:
    """Decode fully (so truncated files fail here, not later) and apply the EXIF orientation."""
    if not data:
        raise ImageDecodeError("empty body: not an image")
    info = probe(data)
    if info.width <= 0 or info.height <= 0 or info.width * info.height > MAX_DECODE_PIXELS:
        raise ImageDecodeError(f"image size {info.width}x{info.height} is not supported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opened = Image.open(io.BytesIO(data))
            opened.load()
            img: Image.Image = ImageOps.exif_transpose(opened) or opened
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from None
    return img


def to_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def average_colour(img: Image.Image) -> str:
    """``0xRRGGBB`` of the mean colour (the ``Ave`` of CI's ImageInfo)."""
    small = img.convert("RGB").resize((1, 1), Image.Resampling.BOX)
    r, g, b = small.getpixel((0, 0))  # type: ignore[misc]
    return f"0x{r:02x}{g:02x}{b:02x}"


# -- subject mask -------------------------------------------------------------------------------------------
def _border_pixels(img: Image.Image) -> list[tuple[int, int, int]]:
    w, h = img.size
    px = img.load()
    assert px is not None
    pts: list[tuple[int, int, int]] = []
    step_x = max(1, w // 128)
    step_y = max(1, h // 128)
    for x in range(0, w, step_x):
        pts.append(px[x, 0])  # type: ignore[arg-type]
        pts.append(px[x, h - 1])  # type: ignore[arg-type]
    for y in range(0, h, step_y):
        pts.append(px[0, y])  # type: ignore[arg-type]
        pts.append(px[w - 1, y])  # type: ignore[arg-type]
    return pts


def _median(values: list[int]) -> int:
    s = sorted(values)
    return s[len(s) // 2]


def _distance_map(rgb: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Per-pixel max channel distance from ``colour`` (mode L)."""
    diff = ImageChops.difference(rgb, Image.new("RGB", rgb.size, colour))
    r, g, b = diff.split()
    return ImageChops.lighter(ImageChops.lighter(r, g), b)


def subject_mask(img: Image.Image) -> Image.Image:
    """Alpha mask (mode L, same size as ``img``) separating the subject from the background."""
    w, h = img.size
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = img.convert("RGBA").getchannel("A")
        lo, hi = alpha.getextrema()
        if int(hi) - int(lo) > 32:  # type: ignore[arg-type]
            # The input already carries a cut-out: keep it (matting an already matted image changes nothing).
            return alpha
    rgb = img.convert("RGB")
    scale = min(1.0, _MASK_WORK_SIDE / max(w, h))
    work = rgb
    if scale < 1.0:
        work = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    border = _border_pixels(work)
    bg = (
        _median([p[0] for p in border]),
        _median([p[1] for p in border]),
        _median([p[2] for p in border]),
    )
    dist = _distance_map(work, bg)
    # Threshold above the background's own noise: 90th percentile of the distances of the border pixels that
    # look like background (a subject touching the border, e.g. a portrait's shoulders, must not count).
    border_d = sorted(
        d for d in (max(abs(p[0] - bg[0]), abs(p[1] - bg[1]), abs(p[2] - bg[2])) for p in border) if d < 64
    )
    noise = border_d[int(len(border_d) * 0.9)] if border_d else 0
    t0 = min(200, max(18, noise + 12))
    t1 = min(255, t0 + 40)

    def ramp(v: int) -> int:
        if v <= t0:
            return 0
        if v >= t1:
            return 255
        return (v - t0) * 255 // (t1 - t0)

    mask = dist.point(ramp)
    if min(work.size) >= 5:
        mask = mask.filter(ImageFilter.MedianFilter(3))  # drop isolated specks
    mask = mask.filter(ImageFilter.GaussianBlur(1.0))  # soft edge
    if mask.size != (w, h):
        mask = mask.resize((w, h), Image.Resampling.BILINEAR)
    return mask


def subject_bbox(mask: Image.Image) -> tuple[int, int, int, int] | None:
    return mask.point(lambda v: 255 if v > _SUBJECT_LEVEL else 0).getbbox()


# -- matting ------------------------------------------------------------------------------------------------
def matting(data: bytes, *, center_layout: bool = False, padding: tuple[int, int] = (0, 0)) -> bytes:
    """AIPortraitMatting / GoodsMatting: PNG whose alpha keeps the subject; optional centring and padding."""
    img = decode_image(data)
    mask = subject_mask(img)
    out = img.convert("RGBA")
    out.putalpha(mask)
    if center_layout:
        out = _centre_subject(out, mask)
    return to_png(_pad(out, padding))


def _centre_subject(rgba: Image.Image, mask: Image.Image) -> Image.Image:
    box = subject_bbox(mask)
    if box is None:
        return rgba
    x0, y0, x1, y1 = box
    subject = rgba.crop(box)
    canvas = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
    canvas.paste(subject, ((rgba.width - (x1 - x0)) // 2, (rgba.height - (y1 - y0)) // 2))
    return canvas


def _pad(rgba: Image.Image, padding: tuple[int, int]) -> Image.Image:
    dx, dy = padding
    if dx == 0 and dy == 0:
        return rgba
    canvas = Image.new("RGBA", (rgba.width + 2 * dx, rgba.height + 2 * dy), (0, 0, 0, 0))
    canvas.paste(rgba, (dx, dy))
    return canvas


# -- face beauty --------------------------------------------------------------------------------------------
def face_beauty(data: bytes, *, strength: float = 0.5) -> bytes:
    """AIFaceBeauty: blend of the original and a smoothed copy; strength 0 returns the original pixels."""
    img = decode_image(data)
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    base = img.convert("RGBA" if has_alpha else "RGB")
    if strength <= 0.0:
        return to_png(base)
    rgb = base.convert("RGB")
    radius = max(1.0, min(rgb.size) / 200.0)
    smooth = rgb.filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.GaussianBlur(radius))
    # A slight brightening, as beauty filters do; it also scales with strength.
    smooth = smooth.point(lambda v: min(255, int(v * 1.04 + 4)))
    out = Image.blend(rgb, smooth, max(0.0, min(1.0, strength)) * 0.9)
    if has_alpha:
        out = out.convert("RGBA")
        out.putalpha(base.getchannel("A"))
    return to_png(out)


# -- cheap placeholders (benchmark mode: fixed latency, no pixel work) -----------------------------------------
_placeholder_cache: dict[tuple[int, int, str], bytes] = {}


def placeholder_png(width: int, height: int, mode: str = "RGBA") -> bytes:
    """A valid blank PNG of the given size; cached, so benchmark mode costs no pixel work per call."""
    key = (max(1, width), max(1, height), mode)
    cached = _placeholder_cache.get(key)
    if cached is None:
        if len(_placeholder_cache) > 64:
            _placeholder_cache.clear()
        cached = to_png(Image.new(mode, key[:2]))
        _placeholder_cache[key] = cached
    return cached


# -- portrait parts (BDA SegmentCustomizedPortraitPic) --------------------------------------------------------
# Regions as fractions of the subject's bounding box: (x0, y0, x1, y1). "Left"/"Right" are the person's own
# sides, i.e. the image's right/left for a person facing the camera.
PART_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "Hair": (0.0, 0.0, 1.0, 0.12),
    "Hat": (0.15, 0.0, 0.85, 0.08),
    "Headdress": (0.2, 0.0, 0.8, 0.1),
    "Head": (0.0, 0.0, 1.0, 0.30),
    "Face": (0.25, 0.10, 0.75, 0.30),
    "LeftEyebrow": (0.55, 0.13, 0.70, 0.155),
    "RightEyebrow": (0.30, 0.13, 0.45, 0.155),
    "LeftEye": (0.55, 0.16, 0.70, 0.19),
    "RightEye": (0.30, 0.16, 0.45, 0.19),
    "Nose": (0.43, 0.18, 0.57, 0.235),
    "Mouth": (0.38, 0.24, 0.62, 0.28),
    "UpperLip": (0.38, 0.24, 0.62, 0.26),
    "LowerLip": (0.38, 0.26, 0.62, 0.28),
    "Tooth": (0.43, 0.25, 0.57, 0.27),
    "LeftEar": (0.75, 0.15, 0.88, 0.25),
    "RightEar": (0.12, 0.15, 0.25, 0.25),
    "Earrings": (0.12, 0.24, 0.88, 0.29),
    "Necklace": (0.33, 0.30, 0.67, 0.36),
    "Body": (0.0, 0.30, 1.0, 1.0),
    "Belongings": (0.0, 0.65, 1.0, 1.0),
}


@dataclass
class Segmentation:
    portrait_png: bytes
    mask_png: bytes
    rects: list[dict[str, int | str]]


def _part_mask(subject: Image.Image, box: tuple[int, int, int, int], part: str) -> Image.Image:
    if part == "Background":
        return ImageOps.invert(subject)
    fx0, fy0, fx1, fy1 = PART_REGIONS[part]
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    region = (
        x0 + int(fx0 * bw),
        y0 + int(fy0 * bh),
        max(x0 + int(fx0 * bw) + 1, x0 + round(fx1 * bw)),
        max(y0 + int(fy0 * bh) + 1, y0 + round(fy1 * bh)),
    )
    window = Image.new("L", subject.size, 0)
    window.paste(255, region)
    return ImageChops.multiply(subject, window)


def segment_parts(img: Image.Image, parts: list[str]) -> Segmentation:
    """Union of the requested parts as a transparent-background PNG, its grayscale mask, and labelled rects."""
    subject = subject_mask(img)
    box = subject_bbox(subject)
    union = Image.new("L", img.size, 0)
    rects: list[dict[str, int | str]] = []
    for part in parts:
        if box is None and part != "Background":
            continue
        pm = _part_mask(subject, box or (0, 0, img.width, img.height), part)
        union = ImageChops.lighter(union, pm)
        pbox = subject_bbox(pm)
        if pbox is not None:
            x0, y0, x1, y1 = pbox
            rects.append({"X": x0, "Y": y0, "Width": x1 - x0, "Height": y1 - y0, "Label": part})
    portrait = img.convert("RGBA")
    portrait.putalpha(union)
    return Segmentation(to_png(portrait), to_png(union), rects)
