"""The demo page (demo/report.py) reads as a person would show it: checked in the same Chromium as the UI test."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from demo import report, sample_data
from tests.ui.browser import browser_missing, chromium, screenshot

RESULTS = [
    {"dag_id": "tencent_ci_daily_matting", "state": "success", "seconds": 9.8, "paid": {"ImageProcess": 5},
     "tasks": {"matte_portraits": "success", "matte_goods": "success", "summarize": "success"}},
    {"dag_id": "tencent_ci_video_body", "state": "failed", "seconds": 3.4, "paid": {"CreateJob": 2},
     "tasks": {"submit": "success", "wait": "failed"}, "error": "boom"},
]  # fmt: skip


def _soften(data: bytes) -> bytes:
    """A stand-in for face beauty's output (a blurred PNG), so before and after differ."""
    from PIL import Image, ImageFilter

    out = io.BytesIO()
    Image.open(io.BytesIO(data)).filter(ImageFilter.GaussianBlur(2)).save(out, format="PNG")
    return out.getvalue()


def _build(out_dir: Path) -> Path:
    rows = []
    for image in sample_data.portraits(2):
        after = _soften(image.data)
        rows.append(
            report.Row(
                image.name,
                [
                    report.Cell("input", image.data, f"/local/{image.name}"),
                    report.Cell("beauty", after, f"cos://b-1250000000/beauty/{image.name}"),
                    report.Cell(report.BEAUTY_ZOOM, report.beauty_zoom(image.data, after)),
                ],
            )
        )
    studio = report.Section("tencent_ci_portrait_studio", "studio", rows, in_contact_sheet=True)
    daily_text = report.status_counts_text("portraits", {"portraits": {"processed": 3, "skipped": 1, "failed": 0}})
    daily = report.Section("tencent_ci_daily_matting", daily_text, rows[:1])
    report.contact_sheet(rows, ["input", "beauty", report.BEAUTY_ZOOM], out_dir / "contact_sheet.png")
    return report.write_html([studio, daily], out_dir, title="demo", results=RESULTS)


def test_beauty_close_up_is_a_before_after_pair_at_a_readable_scale() -> None:
    from PIL import Image

    image = sample_data.portraits(1)[0].data
    pair = Image.open(io.BytesIO(report.beauty_zoom(image, _soften(image)) or b""))
    assert pair.size == (2 * report.THUMB + report.PAD, report.THUMB)
    # The face crop is enlarged: a 240 px wide portrait's face (56 % of its width) fills a 200 px tile.
    left, right = pair.crop((0, 0, report.THUMB, report.THUMB)), pair.crop((report.THUMB + report.PAD, 0, *pair.size))
    assert left.tobytes() != right.tobytes()
    assert report.beauty_zoom(image, None) is None


def test_summary_texts_are_sentences() -> None:
    assert report.paid_calls_text({"ImageProcess": 4, "CreateJob": 1}) == "1 CreateJob, 4 ImageProcess"
    assert report.paid_calls_text({}) == "none"
    assert report.status_counts_text("goods", {"goods": {"processed": 2}}) == "goods: 2 processed, 0 skipped, 0 failed"


def test_mapped_xcom_reads_every_map_index() -> None:
    import pendulum
    from airflow.sdk import DAG, task

    from tests.conftest import run_dag

    with DAG("demo_report_mapped_xcom", schedule=None, start_date=pendulum.datetime(2025, 1, 1)) as dag:

        @task
        def double(x: int) -> dict[str, int]:
            return {"x": x * 2}

        double.expand(x=[1, 2, 3])
    dr = run_dag(dag)
    assert report.mapped_xcom(dr, "double") == [{"x": 2}, {"x": 4}, {"x": 6}]
    assert report.mapped_xcom(None, "double") == []


@pytest.mark.ui
@pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))
def test_demo_page_in_the_browser(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = _build(tmp_path)
    with chromium() as browser:
        browser.set_window_size(1400, 2000)
        browser.get(page.as_uri())
        text = browser.find_element(By.TAG_NAME, "body").text
        screenshot(browser, "5-demo-report")
        images = browser.find_elements(By.TAG_NAME, "img")
        loaded = [browser.execute_script("return arguments[0].naturalWidth", img) for img in images]
        sources = [str(img.get_attribute("src")) for img in images]
    assert "{'" not in text and "'}" not in text, "a Python dict repr on the page"
    assert "5 ImageProcess" in text and "2 CreateJob" in text and "failed" in text and "boom" in text
    assert "portraits: 3 processed, 1 skipped, 0 failed" in text
    assert all(width > 0 for width in loaded), list(zip(sources, loaded, strict=True))
    # The studio appears once, as the contact sheet; its table lists locations only (no repeated thumbnails).
    assert sum(src.endswith("contact_sheet.png") for src in sources) == 1
    assert len(images) == 1 + 3  # the sheet + the daily section's one row (input, beauty, close-up)
    assert "cos://b-1250000000/beauty/portrait-01.jpg" in text
