"""What a successful job writes at Operation.Output, and the MediaInfo / MediaResult it then reports.

For an image input the output is the matted result of the requested Mode (Mask: grayscale alpha, Foreground: subject
over the Background colour, Combination: subject over the BackgroundLogoUrl image); for anything else (a video) it
is a copy of the input bytes: the emulator cannot cut a subject out of a video.
"""

from __future__ import annotations

from typing import Any

from .. import imaging


def produce_output(data: bytes, svb: dict[str, str], logo: bytes | None, skip_pixel_work: bool) -> tuple[bytes, str]:
    """The job's output bytes and content type (see the module docstring)."""
    try:
        info = imaging.probe(data)
    except imaging.ImageDecodeError:
        return data, "video/mp4"  # a video (or anything else): the emulator cannot cut it out, it copies it
    if skip_pixel_work:
        return imaging.placeholder_png(info.width, info.height), "image/png"
    from PIL import Image

    img = imaging.decode_image(data)
    mask = imaging.subject_mask(img)
    threshold = int(svb.get("BinaryThreshold", "0"))
    if threshold:
        mask = mask.point(lambda v: 255 if v > threshold else 0)
    mode = svb.get("Mode", "Mask")
    if mode == "Mask":
        return imaging.to_png(mask), "image/png"
    if mode == "Combination" and logo is not None:
        try:
            background = imaging.decode_image(logo).convert("RGB").resize(img.size)
        except imaging.ImageDecodeError:
            background = Image.new("RGB", img.size, (0, 0, 0))
    else:
        colour = tuple(int(svb.get(n, "0")) for n in ("BackgroundRed", "BackgroundGreen", "BackgroundBlue"))
        background = Image.new("RGB", img.size, colour)  # type: ignore[arg-type]
    background.paste(img.convert("RGB"), (0, 0), mask)
    return imaging.to_png(background), "image/png"


def format_name(key: str, content_type: str) -> str:
    ext = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    if content_type == "image/png":
        return "png"
    return ext or "mp4"


def media_fields(output: dict[str, str], size: int, content_type: str) -> dict[str, Any]:
    """Operation.MediaInfo and Operation.MediaResult of a finished job (seed: "Output file's media information")."""
    return {
        "MediaInfo": {
            "Format": {
                "Bitrate": "0",
                "Duration": "0",
                "FormatLongName": "",
                "FormatName": format_name(output["Object"], content_type),
                "NumProgram": "0",
                "NumStream": "1",
                "Size": str(size),
                "StartTime": "0",
            }
        },
        "MediaResult": {
            "OutputFile": {"Bucket": output["Bucket"], "Region": output["Region"], "ObjectName": output["Object"]}
        },
    }
