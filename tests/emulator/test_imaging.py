"""Pixel work of the emulator, tested directly (no server): outputs must depend on the input pixels."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw

from airflow_provider_tencent_ci.emulator import imaging
from tests.emulator.images import mean_abs_diff, portrait


def test_matting_alpha_separates_subject_from_background() -> None:
    out = Image.open(io.BytesIO(imaging.matting(portrait())))
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (240, 300)
    alpha = out.getchannel("A")
    assert alpha.getextrema() == (0, 255)
    assert alpha.getpixel((3, 3)) == 0  # background corner
    assert alpha.getpixel((120, 70)) == 255  # head
    assert alpha.getpixel((120, 250)) == 255  # body, even where it touches the border


def test_matting_of_another_image_gives_another_mask() -> None:
    a = Image.open(io.BytesIO(imaging.matting(portrait()))).getchannel("A")
    img = Image.new("RGB", (240, 300), (250, 250, 250))
    ImageDraw.Draw(img).rectangle((10, 10, 60, 60), fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    b = Image.open(io.BytesIO(imaging.matting(buf.getvalue()))).getchannel("A")
    assert ImageChops.difference(a, b).getbbox() is not None
    assert b.getpixel((30, 30)) == 255 and b.getpixel((200, 200)) == 0


def test_padding_grows_the_canvas_exactly_and_stays_transparent() -> None:
    out = Image.open(io.BytesIO(imaging.matting(portrait(), padding=(20, 10))))
    assert out.size == (240 + 40, 300 + 20)
    alpha = out.getchannel("A")
    assert alpha.crop((0, 0, 20, 320)).getextrema() == (0, 0)
    assert alpha.crop((0, 0, 280, 10)).getextrema() == (0, 0)


def test_center_layout_centres_the_subject_box() -> None:
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    ImageDraw.Draw(img).rectangle((10, 20, 60, 80), fill=(200, 30, 30))  # subject near the top-left corner
    buf = io.BytesIO()
    img.save(buf, "PNG")
    plain = Image.open(io.BytesIO(imaging.matting(buf.getvalue())))
    centred = Image.open(io.BytesIO(imaging.matting(buf.getvalue(), center_layout=True)))
    box0 = imaging.subject_bbox(plain.getchannel("A"))
    box1 = imaging.subject_bbox(centred.getchannel("A"))
    assert box0 is not None and box1 is not None
    assert box0[0] < 20  # left before
    cx, cy = (box1[0] + box1[2]) / 2, (box1[1] + box1[3]) / 2
    assert abs(cx - 150) <= 2 and abs(cy - 100) <= 2
    assert (box1[2] - box1[0], box1[3] - box1[1]) == (box0[2] - box0[0], box0[3] - box0[1])


def test_face_beauty_difference_grows_with_strength() -> None:
    src = Image.open(io.BytesIO(portrait(fmt="PNG")))
    diffs = []
    for strength in (0.0, 0.2, 0.8):
        out = Image.open(io.BytesIO(imaging.face_beauty(portrait(fmt="PNG"), strength=strength)))
        assert out.format == "PNG" and out.size == src.size
        diffs.append(mean_abs_diff(src, out))
    assert diffs[0] == 0.0
    assert 0.0 < diffs[1] < diffs[2]


def test_segment_parts_labels_requested_parts_only() -> None:
    img = Image.open(io.BytesIO(portrait()))
    seg = imaging.segment_parts(img, ["Head", "Body"])
    labels = [r["Label"] for r in seg.rects]
    assert labels == ["Head", "Body"]
    head = seg.rects[0]
    body = seg.rects[1]
    assert int(head["Y"]) < int(body["Y"])
    mask = Image.open(io.BytesIO(seg.mask_png))
    assert mask.mode == "L" and mask.size == img.size
    portrait_png = Image.open(io.BytesIO(seg.portrait_png))
    assert portrait_png.mode == "RGBA"
    assert portrait_png.getchannel("A").getpixel((3, 3)) == 0
    # Head only is a strict subset of Head + Body.
    head_only = Image.open(io.BytesIO(imaging.segment_parts(img, ["Head"]).mask_png))
    assert sum(head_only.histogram()[128:]) < sum(mask.histogram()[128:])


def test_background_part_is_the_inverse_of_the_subject() -> None:
    img = Image.open(io.BytesIO(portrait()))
    seg = imaging.segment_parts(img, ["Background"])
    mask = Image.open(io.BytesIO(seg.mask_png))
    assert mask.getpixel((3, 3)) == 255 and mask.getpixel((120, 250)) == 0


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_non_images_raise_decode_error(data: bytes) -> None:
    with pytest.raises(imaging.ImageDecodeError):
        imaging.decode_image(data)


def test_truncated_jpeg_raises_decode_error() -> None:
    data = portrait()
    with pytest.raises(imaging.ImageDecodeError):
        imaging.decode_image(data[: len(data) // 3])


def test_placeholder_is_a_valid_png_of_the_size() -> None:
    out = Image.open(io.BytesIO(imaging.placeholder_png(33, 44)))
    assert out.format == "PNG" and out.size == (33, 44)
