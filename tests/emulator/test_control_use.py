"""What the control token holder gets (issue 15 item 5), over real HTTP: seeding from the CLI, job timing and job
control from the CLI and the HTTP API, and the read-only object view behind ``console_base_url``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_tencent_ci.emulator import Emulator
from airflow_provider_tencent_ci.emulator.__main__ import client as cli

from .conftest import BUCKET

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"fake video payload" * 50


def run_cli(emu: Emulator, *argv: str) -> list[str]:
    lines: list[str] = []
    code = cli([argv[0], "--url", emu.url, "--token", emu.control_token, *argv[1:]], out=lines.append)
    assert code == 0, lines
    return lines


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
    return value


def submit_job(emu: Emulator) -> str:
    emu.put_object("examplebucket", "input/clip.mp4", VIDEO, content_type="video/mp4")
    jobs = {
        "Tag": "SegmentVideoBody",
        "Input": {"Object": "input/clip.mp4"},
        "Operation": {
            "SegmentVideoBody": {"Mode": "Mask"},
            "Output": {"Region": emu.region, "Bucket": BUCKET, "Object": "output/clip.mp4"},
        },
    }
    detail = emu.cos_client().ci_create_media_jobs(Bucket=BUCKET, Jobs=jobs, Lst={})["JobsDetail"][0]
    return str(detail["JobId"])


def job_state(emu: Emulator, job_id: str) -> str:
    return str(emu.cos_client().ci_get_media_jobs(Bucket=BUCKET, JobIDs=job_id)["JobsDetail"][0]["State"])


# -- seeding ---------------------------------------------------------------------------------------------------------
def test_seed_files_and_folders_from_the_cli(emu: Emulator, tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    (folder / "day 1").mkdir(parents=True)
    (folder / "a.mp4").write_bytes(VIDEO)
    (folder / "day 1" / "b.png").write_bytes(b"\x89PNG fake")
    (folder / ".a.mp4.part").write_bytes(b"partial")  # hidden leftovers are not seeded
    single = tmp_path / "notes.txt"
    single.write_text("hello")
    lines = run_cli(emu, "seed", "--bucket", "examplebucket", "--prefix", "videos/", str(folder), str(single))
    assert lines[-1] == "seeded 3 object(s)"
    assert emu.list_keys("examplebucket", "videos/") == ["videos/a.mp4", "videos/day 1/b.png", "videos/notes.txt"]
    rec = emu.get_object("examplebucket", "videos/a.mp4")
    assert rec is not None and rec.data == VIDEO and rec.content_type == "video/mp4"
    # the seeded object is a real COS object: the SDK reads it back signed
    got = emu.cos_client().get_object(Bucket=BUCKET, Key="videos/day 1/b.png")["Body"].get_raw_stream().read()
    assert got == b"\x89PNG fake"


def test_seed_refuses_an_unknown_bucket_and_a_wrong_token(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"x")
    assert cli(["seed", "--url", emu.url, "--token", emu.control_token, "--bucket", "ghost", str(tmp_path)]) == 1
    assert cli(["seed", "--url", emu.url, "--token", "wrong", "--bucket", "examplebucket", str(tmp_path)]) == 1
    assert emu.list_keys("examplebucket") == []


# -- job timing and control ------------------------------------------------------------------------------------------
def test_job_timing_pause_resume_from_the_cli(emu: Emulator) -> None:
    assert run_cli(emu, "timing", "--queue-seconds", "60", "--run-seconds", "60") == [
        '{"queue_seconds": 60.0, "run_seconds": 60.0}'
    ]
    job_id = submit_job(emu)
    assert job_state(emu, job_id) == "Submitted"  # 60 s in the queue: it waits
    assert run_cli(emu, "job", "pause", job_id) == [f"{job_id}  Pause"]
    assert job_state(emu, job_id) == "Pause"
    assert run_cli(emu, "job", "resume", job_id) == [f"{job_id}  Submitted"]
    listing = run_cli(emu, "jobs")
    assert listing == [f"{job_id}  Submitted  {BUCKET}  input/clip.mp4"]
    run_cli(emu, "timing", "--queue-seconds", "0", "--run-seconds", "0")
    wait_for(lambda: job_state(emu, job_id) == "Success")


def test_job_fail_over_http(emu: Emulator) -> None:
    emu.set_job_timing(60, 60)
    job_id = submit_job(emu)
    url = f"{emu.url}/_emulator/jobs/{job_id}/fail"
    assert httpx.post(url, json={"code": "X"}).status_code == 401  # no token, no control
    answer = httpx.post(url, json={"code": "InternalError", "message": "boom"}, headers=emu.control_headers)
    assert answer.json() == {"JobId": job_id, "State": "Failed"}
    detail = emu.cos_client().ci_get_media_jobs(Bucket=BUCKET, JobIDs=job_id)["JobsDetail"][0]
    assert (detail["State"], detail["Code"], detail["Message"]) == ("Failed", "InternalError", "boom")
    missing = httpx.post(f"{emu.url}/_emulator/jobs/nope/pause", headers=emu.control_headers)
    assert missing.status_code == 404
    bad = httpx.post(
        f"{emu.url}/_emulator/timing", json={"queue_seconds": -1, "run_seconds": 1}, headers=emu.control_headers
    )
    assert bad.status_code == 400


# -- the object view -------------------------------------------------------------------------------------------------
def test_object_view_lists_and_downloads_with_the_token_in_the_url(emu: Emulator) -> None:
    emu.put_object("examplebucket", "out/a b?.png", b"\x89PNG data", content_type="image/png")
    emu.put_object("examplebucket", "out/<script>.html", b"<script>alert(1)</script>", content_type="text/html")
    base = emu.console_base_url
    assert emu.connection_extras()["console_base_url"] == base
    index = httpx.get(f"{base}/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert f"/objects/{BUCKET}/" in index.text
    listing = httpx.get(f"{base}/objects/{BUCKET}/", params={"prefix": "out/"})
    hrefs = re.findall(r'href="([^"]+)"', listing.text)
    assert "&lt;script&gt;.html" in listing.text and "<script>" not in listing.text
    link = next(h for h in hrefs if h.endswith("a%20b%3F.png"))
    image = httpx.get(f"{emu.url}{link}")
    assert image.content == b"\x89PNG data" and image.headers["content-type"] == "image/png"
    html_obj = httpx.get(f"{base}/objects/{BUCKET}/out/%3Cscript%3E.html")
    assert html_obj.headers["content-security-policy"] == "sandbox"  # stored pages never run on this origin
    assert html_obj.headers["referrer-policy"] == listing.headers["referrer-policy"] == "no-referrer"
    # without the token, or with another one, nothing is shown
    for url in (f"{emu.url}/_emulator/view/", f"{emu.url}/_emulator/view/wrong/objects/{BUCKET}/"):
        assert httpx.get(url).status_code == 401
    assert httpx.post(f"{base}/objects/{BUCKET}/", headers={"Content-Type": "application/json"}).status_code == 401


def test_job_page_links_to_its_objects(emu: Emulator) -> None:
    emu.set_job_timing(0, 0)
    job_id = submit_job(emu)
    wait_for(lambda: job_state(emu, job_id) == "Success")
    page = httpx.get(f"{emu.console_base_url}/jobs/{BUCKET}/{job_id}")
    assert page.status_code == 200 and "Success" in page.text
    hrefs = re.findall(r'href="([^"]+)"', page.text)
    assert any(h.endswith(f"/objects/{BUCKET}/input/clip.mp4") for h in hrefs)
    output = next(h for h in hrefs if h.endswith(f"/objects/{BUCKET}/output/clip.mp4"))
    assert httpx.get(f"{emu.url}{output}").status_code == 200
    assert httpx.get(f"{emu.console_base_url}/jobs/otherbucket/{job_id}").status_code == 404


def test_http_object_api_lists_and_seeds(emu: Emulator) -> None:
    put = httpx.put(
        f"{emu.control_url}/objects/examplebucket/in/x.txt",
        content=b"seeded",
        headers={**emu.control_headers, "Content-Type": "text/plain"},
    )
    assert put.json()["key"] == "in/x.txt"
    listing = httpx.get(f"{emu.control_url}/objects/examplebucket/", headers=emu.control_headers).json()
    assert [o["key"] for o in listing["objects"]] == ["in/x.txt"] and listing["objects"][0]["size"] == 6
    got = httpx.get(f"{emu.control_url}/objects/{BUCKET}/in/x.txt", headers=emu.control_headers)
    assert got.content == b"seeded" and got.headers["content-type"] == "text/plain"
    long_key = httpx.put(
        f"{emu.control_url}/objects/examplebucket/{'k' * 851}", content=b"x", headers=emu.control_headers
    )
    assert long_key.status_code == 400 and emu.list_keys("examplebucket") == ["in/x.txt"]


@pytest.mark.parametrize("argv", [["jobs"], ["job", "pause", "j1"]])
def test_client_commands_need_url_and_token(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENCENT_CI_EMULATOR_URL", raising=False)
    monkeypatch.delenv("TENCENT_CI_EMULATOR_TOKEN", raising=False)
    assert cli(argv) == 2
