"""The demo's at-a-glance report: ``index.html`` (inputs beside outputs) and ``contact_sheet.png`` (a grid).

Both are built from :class:`Section` lists of rows of :class:`Cell` (a title, image bytes, where the object
lives). Images with alpha are shown on a checkerboard so transparency is visible. The page opens with a table of
the DAG runs in words; the portrait studio is shown once, as the contact sheet (with a zoomed before/after of the
face so face beauty is visible), followed by where each output lives.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

THUMB = 200
LABEL_H = 18
PAD = 8
BEAUTY_ZOOM = "face beauty close-up: before | after"
# The face of a head-and-shoulders portrait (sample_data.portrait: head centred at 2/5 of the height), as fractions.
FACE_BOX = (0.22, 0.16, 0.78, 0.58)


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


def beauty_zoom(before: bytes | None, after: bytes | None, side: int = THUMB) -> bytes | None:
    """The face of ``before`` and ``after`` side by side, each enlarged to ``side`` px, as PNG bytes."""
    if not before or not after:
        return None
    crops = []
    for data in (before, after):
        img = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = img.size
        box = (int(FACE_BOX[0] * w), int(FACE_BOX[1] * h), int(FACE_BOX[2] * w), int(FACE_BOX[3] * h))
        crop = img.crop(box)
        scale = side / max(crop.size)
        crops.append(crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS))
    pair = Image.new("RGB", (2 * side + PAD, side), (255, 255, 255))
    for i, crop in enumerate(crops):
        pair.paste(crop, (i * (side + PAD) + (side - crop.width) // 2, (side - crop.height) // 2))
    out = io.BytesIO()
    pair.save(out, format="PNG")
    return out.getvalue()


def contact_sheet(rows: list[Row], columns: list[str], path: Path) -> Path:
    """A grid: one line per row, one column per title in ``columns`` (cells matched by title).

    The :data:`BEAUTY_ZOOM` column is two tiles wide (its image is a before/after pair).
    """
    font = ImageFont.load_default()
    label_w = 140
    widths = [2 * THUMB + PAD if title == BEAUTY_ZOOM else THUMB for title in columns]
    lefts = [label_w + PAD + sum(widths[:c]) + c * PAD for c in range(len(columns))]
    width = label_w + sum(widths) + (len(columns) + 1) * PAD
    height = LABEL_H + PAD + max(1, len(rows)) * (THUMB + PAD) + PAD
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(columns):
        draw.text((lefts[c], PAD // 2), title, fill=(0, 0, 0), font=font)
    for r, row in enumerate(rows):
        y = LABEL_H + PAD + r * (THUMB + PAD)
        draw.text((PAD, y + THUMB // 2 - 6), row.label[:22], fill=(0, 0, 0), font=font)
        by_title = {cell.title: cell for cell in row.cells}
        for c, title in enumerate(columns):
            cell = by_title.get(title)
            data = cell.data if cell else None
            if title == BEAUTY_ZOOM and data:
                sheet.paste(Image.open(io.BytesIO(data)).convert("RGB"), (lefts[c], y))
            else:
                sheet.paste(thumbnail(data), (lefts[c], y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


# ---- words instead of Python reprs ------------------------------------------------------------------------
def paid_calls_text(paid: Mapping[str, int] | None) -> str:
    """``{"ImageProcess": 4}`` as "4 ImageProcess"; nothing paid as "none"."""
    if not paid:
        return "none"
    return ", ".join(f"{count} {api}" for api, count in sorted(paid.items()))


def status_counts_text(category: str, summary: Mapping[str, Any] | None) -> str:
    """One category of the daily-matting summary as a sentence fragment."""
    counts = (summary or {}).get(category) or {}
    return (
        f"{category}: {counts.get('processed', 0)} processed, {counts.get('skipped', 0)} skipped, "
        f"{counts.get('failed', 0)} failed"
    )


def mapped_xcom(dag_run: Any, task_id: str) -> list[Any]:
    """The return values of every map index of a mapped task, in map-index order (or the one of a plain task).

    ``ti.xcom_pull(task_ids=...)`` from a non-mapped context returns None for a mapped task, so each index is
    read from its own task instance.
    """
    if dag_run is None:
        return []
    tis = sorted((ti for ti in dag_run.get_task_instances() if ti.task_id == task_id), key=lambda ti: ti.map_index)
    values = []
    for ti in tis:
        value = ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index)
        if value is not None:
            values.append(value)
    return values


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


def _results_table(results: list[Mapping[str, Any]]) -> str:
    head = "<tr><th>DAG</th><th>result</th><th>time</th><th>paid calls</th><th>tasks</th></tr>"
    rows = []
    for r in results:
        tasks = r.get("tasks") or {}
        states: dict[str, int] = {}
        for state in tasks.values():
            states[state] = states.get(state, 0) + 1
        task_text = ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "-"
        result = str(r.get("state"))
        colour = "#1a7f37" if result == "success" else "#b42318"
        note = f"<div>{html.escape(str(r['error']))}</div>" if r.get("error") else ""
        rows.append(
            f"<tr><td><code>{html.escape(str(r.get('dag_id')))}</code></td>"
            f"<td style='color:{colour};font-weight:bold'>{html.escape(result)}{note}</td>"
            f"<td>{float(r.get('seconds') or 0):.1f} s</td><td>{html.escape(paid_calls_text(r.get('paid')))}</td>"
            f"<td>{html.escape(task_text)}</td></tr>"
        )
    return "<table class='summary'>" + head + "".join(rows) + "</table>"


def _locations_table(section: Section) -> str:
    """Where a contact-sheet section's outputs live, without repeating its images."""
    titles = [t for t in dict.fromkeys(c.title for row in section.rows for c in row.cells) if t != BEAUTY_ZOOM]
    parts = ["<table><tr><th></th>" + "".join(f"<th>{html.escape(t)}</th>" for t in titles) + "</tr>"]
    for row in section.rows:
        by_title = {c.title: c for c in row.cells}
        cells = "".join(
            f"<td><code>{html.escape(by_title[t].location)}</code></td>" if t in by_title else "<td></td>"
            for t in titles
        )
        parts.append(f"<tr><th>{html.escape(row.label)}</th>{cells}</tr>")
    return "".join(parts) + "</table>"


def write_html(
    sections: list[Section],
    out_dir: Path,
    *,
    title: str,
    results: list[Mapping[str, Any]],
    notes: list[str] | None = None,
) -> Path:
    """``index.html`` with each image copied under ``images/`` so the page works when moved or zipped."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;"
        "margin-bottom:12px}td,th{border:1px solid #ddd;padding:6px;vertical-align:top;font-size:13px;"
        "max-width:260px;word-break:break-all;text-align:left}table.summary td{max-width:none;word-break:normal}"
        "img{max-width:220px;max-height:220px;display:block;"
        "background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 50%/16px 16px}"
        "img.sheet{max-width:100%;max-height:none;background:none}code{font-size:12px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _results_table(results),
    ]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in notes) + "</ul>")
    for s_index, section in enumerate(sections):
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.description)}</p>")
        if not section.rows:
            parts.append("<p><em>no rows</em></p>")
            continue
        if section.in_contact_sheet:
            parts.append("<p><img class='sheet' src='contact_sheet.png' alt='contact sheet'></p>")
            parts.append(_locations_table(section))
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
