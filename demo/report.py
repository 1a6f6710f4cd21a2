"""The demo's at-a-glance report: ``index.html`` (inputs beside outputs) and ``contact_sheet.png`` (a grid).

Both are built from :class:`Section` lists of rows of :class:`Cell` (a title, image bytes, where the object
lives). Images with alpha are shown on a checkerboard so transparency is visible.
"""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

THUMB = 200
LABEL_H = 18
PAD = 8


@dataclass
class Cell:
    title: str
    data: bytes | None  # None: nothing to show (e.g. a video, or a missing output)
    location: str = ""  # cos://bucket/key or a local path
    note: str = ""


@dataclass
class Row:
    label: str
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Section:
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    in_contact_sheet: bool = False


def _checkerboard(size: tuple[int, int], square: int = 10) -> Image.Image:
    board = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(board)
    for y in range(0, size[1], square):
        for x in range(0, size[0], square):
            if (x // square + y // square) % 2:
                draw.rectangle([x, y, x + square - 1, y + square - 1], fill=(210, 210, 210))
    return board


def thumbnail(data: bytes | None, side: int = THUMB) -> Image.Image:
    """The image fitted in a ``side`` square, alpha composited over a checkerboard; a grey tile when absent."""
    tile = Image.new("RGB", (side, side), (235, 235, 235))
    if not data:
        ImageDraw.Draw(tile).text((side // 2 - 20, side // 2 - 6), "(none)", fill=(120, 120, 120))
        return tile
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception:  # not an image: show a labelled tile rather than failing the whole report
        ImageDraw.Draw(tile).text((side // 2 - 30, side // 2 - 6), "(not an image)", fill=(160, 60, 60))
        return tile
    img.thumbnail((side, side))
    rgba = img.convert("RGBA")
    tile = _checkerboard((side, side))
    offset = ((side - rgba.width) // 2, (side - rgba.height) // 2)
    tile.paste(rgba, offset, rgba)
    return tile


def contact_sheet(rows: list[Row], columns: list[str], path: Path) -> Path:
    """A grid: one line per row, one column per title in ``columns`` (cells matched by title)."""
    font = ImageFont.load_default()
    label_w = 140
    width = label_w + len(columns) * (THUMB + PAD) + PAD
    height = LABEL_H + PAD + max(1, len(rows)) * (THUMB + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(columns):
        draw.text((label_w + PAD + c * (THUMB + PAD), PAD // 2), title, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        y = LABEL_H + PAD + r * (THUMB + PAD)
        draw.text((PAD, y + THUMB // 2 - 6), row.label[:22], fill=(0, 0, 0), font=font)
        by_title = {cell.title: cell for cell in row.cells}
        for c, title in enumerate(columns):
            cell = by_title.get(title)
            sheet.paste(thumbnail(cell.data if cell else None), (label_w + PAD + c * (THUMB + PAD), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _sniff_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:2] == b"BM":
        return ".bmp"
    return ".bin"


def write_html(sections: list[Section], out_dir: Path, *, title: str, summary_lines: list[str]) -> Path:
    """``index.html`` with each image copied under ``images/`` so the page works when moved or zipped."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:6px;vertical-align:top;font-size:12px;max-width:230px;"
        "word-break:break-all}img{max-width:220px;max-height:220px;display:block;"
        "background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 50%/16px 16px}"
        "code{font-size:11px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p><img src='contact_sheet.png' style='max-width:100%;max-height:none'></p>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines) + "</ul>",
    ]
    for s_index, section in enumerate(sections):
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.description)}</p>")
        if not section.rows:
            parts.append("<p><em>no rows</em></p>")
            continue
        titles: list[str] = []
        for row in section.rows:
            for cell in row.cells:
                if cell.title not in titles:
                    titles.append(cell.title)
        parts.append("<table><tr><th></th>" + "".join(f"<th>{html.escape(t)}</th>" for t in titles) + "</tr>")
        for r_index, row in enumerate(section.rows):
            parts.append(f"<tr><th>{html.escape(row.label)}</th>")
            by_title = {c.title: c for c in row.cells}
            for c_index, t in enumerate(titles):
                found = by_title.get(t)
                if found is None:
                    parts.append("<td></td>")
                    continue
                cell = found
                inner = ""
                if cell.data:
                    name = f"{s_index}-{r_index}-{c_index}-{_slug(row.label)}-{_slug(t)}{_sniff_ext(cell.data)}"
                    (images / name).write_bytes(cell.data)
                    inner += f"<img src='images/{html.escape(name)}' alt='{html.escape(t)}'>"
                if cell.location:
                    inner += f"<code>{html.escape(cell.location)}</code>"
                if cell.note:
                    inner += f"<div>{html.escape(cell.note)}</div>"
                parts.append(f"<td>{inner}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    path = out_dir / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
