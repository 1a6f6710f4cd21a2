"""Hardening of the image operators (issue 14): local outputs stay in their folder, images over the limits are
refused from their header (and a COS object from its HEAD) without being decoded or downloaded, auto_resize keeps
tones and orientation, temp files and dotfiles never become sources."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from PIL import Image, ImageStat

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.operators import _batch
from airflow_provider_tencent_ci.operators.bda import SegmentPortraitPartsOperator, prepare_image
from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator
from tests.conftest import run_dag
from tests.hooks.conftest import FAST_RETRY, set_conn
from tests.operators.image_support import BUCKET, START, paid, state, subject_png, xcom

REPO = Path(__file__).resolve().parents[2]


# -- local outputs stay under the template's folder ------------------------------------------------------------------
def test_download_output_path_cannot_escape_through_the_key(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    key = "in/../../../escape.png"
    emu.put_object(BUCKET, key, subject_png())
    victim = tmp_path / "escape.png"
    victim.write_bytes(b"precious")
    out = tmp_path / "a" / "b" / "out"
    op = PortraitMattingOperator(
        task_id="t", mode="download", bucket=BUCKET, source_key=key, output_path=str(out / "{key}")
    )
    op._validate(rendered=True)
    with pytest.raises(ParameterValidationError, match=r"must stay inside") as info:
        op._plan()
    assert info.value.param == "output_path" and "escape.png" in str(info.value.value)
    assert victim.read_bytes() == b"precious"
    assert emu.stats.count() == 0


def test_bda_url_path_cannot_escape_the_output_folder(tencent_conn: Any, tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    url = f"https://{BUCKET}.cos.ap-guangzhou.myqcloud.com/x/../../../../victim.png"
    with DAG("hardening_bda_escape", schedule=None, start_date=START) as dag:
        SegmentPortraitPartsOperator(
            task_id="segment",
            retries=2,
            parts=["Head"],
            url=url,
            portrait_output_path=str(tmp_path / "o" / "p" / "{dir}" / "{name}"),
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "failed"
    assert dr.get_task_instance("segment").try_number == 1  # a validation error is final
    assert victim.read_bytes() == b"precious"
    assert tencent_conn.stats.count() == 0


def test_a_path_inside_the_folder_is_accepted(tmp_path: Path) -> None:
    item = _batch.SourceItem("cos", bucket=BUCKET, key="in/sub/../cat.png")
    template = str(tmp_path / "out" / "{key}")
    assert _batch.contained_path("output_path", template, item) == str(tmp_path / "out" / "in/sub/../cat.png")


# -- temp files and dotfiles -----------------------------------------------------------------------------------------
def test_write_atomic_removes_a_killed_runs_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "cat.png"
    stale = tmp_path / ".cat.png.0123abcd.part"
    stale.write_bytes(b"half")
    other = tmp_path / ".dog.png.0123abcd.part"  # another target's temp file is not ours to remove
    other.write_bytes(b"half")
    assert _batch.write_atomic(str(target), [b"ab", b"cd"]) == 4
    assert target.read_bytes() == b"abcd"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".dog.png.0123abcd.part", "cat.png"]


def test_spooled_file_removes_day_old_spools_of_killed_tasks() -> None:
    import tempfile
    import time

    tmp = Path(tempfile.gettempdir())
    old, fresh = tmp / ".tencent-ci-killed-test.part", tmp / ".tencent-ci-running-test.part"
    for path in (old, fresh):
        path.write_bytes(b"half")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (two_days_ago, two_days_ago))
    try:
        with _batch.SpooledFile([b"abc"]) as spool:
            assert Path(spool.path).name.startswith(".tencent-ci-") and spool.size == 3
        assert not Path(spool.path).exists()
        assert not old.exists() and fresh.exists()
    finally:
        old.unlink(missing_ok=True)
        fresh.unlink(missing_ok=True)


def test_upload_of_a_folder_skips_dotfiles_and_part_files(tencent_conn: Any, tmp_path: Path) -> None:
    emu = tencent_conn
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a.png").write_bytes(subject_png())
    (src / ".b.png").write_bytes(subject_png())
    (src / "c.png.1f2e.part").write_bytes(subject_png()[:20])
    with DAG("hardening_upload_dir", schedule=None, start_date=START) as dag:
        PortraitMattingOperator(
            task_id="process",
            mode="upload",
            bucket=BUCKET,
            source_path=str(src),
            upload_key="up/{name}",
            output_key="matted/{stem}.png",
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    assert paid(emu)["PicOperationsUpload"] == 1
    assert emu.list_keys(BUCKET, "up/") == ["up/a.png"]


# -- BDA image limits from the header / the HEAD ---------------------------------------------------------------------
def _huge_png(path: Path, width: int, height: int) -> None:
    """A valid 8-bit grayscale PNG of any size, written without ever holding its pixels in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(1)
    row = bytes(width + 1)  # filter byte + one zero per pixel
    idat = b"".join([comp.compress(row) for _ in range(height)] + [comp.flush()])
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_huge_images_are_refused_without_decoding(tmp_path: Path) -> None:
    """12000x12000 (144 MB of pixels) is refused from its header; past the bomb limit the error is ours too. A fresh
    process measures its peak RSS around each refusal."""
    big, bomb = tmp_path / "big.png", tmp_path / "bomb.png"
    _huge_png(big, 12000, 12000)
    _huge_png(bomb, 14000, 14000)  # > 2 x Image.MAX_IMAGE_PIXELS: Pillow's DecompressionBombError
    script = textwrap.dedent(
        """
        import json, resource, sys
        from airflow_provider_tencent_ci.exceptions import ParameterValidationError
        from airflow_provider_tencent_ci.operators.bda import prepare_image
        out = []
        for path, auto in ((sys.argv[1], False), (sys.argv[1], True), (sys.argv[2], True)):
            data = open(path, "rb").read()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                prepare_image("source_path", path, data, auto_resize=auto)
                error = None
            except ParameterValidationError as exc:
                error = str(exc)
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
            out.append({"error": error, "grown_kib": grown})
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(big), str(bomb)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "is 12000x12000; width and height must be < 2000" in results[0]["error"]
    assert "auto_resize decodes at most" in results[1]["error"]
    assert "decompression-bomb limit" in results[2]["error"]
    for result in results:
        assert result["grown_kib"] < 40 * 1024, results  # decoding would take 144 MB (196 MB for the bomb)


def test_cos_object_over_the_limit_is_never_downloaded(tencent_conn: Any) -> None:
    emu = tencent_conn
    emu.put_object(BUCKET, "heavy/p.png", b"\x89PNG\r\n\x1a\n" + os.urandom(4_000_000))
    with DAG("hardening_bda_heavy", schedule=None, start_date=START) as dag:
        SegmentPortraitPartsOperator(
            task_id="segment",
            parts=["Head"],
            bucket=BUCKET,
            source_key="heavy/p.png",
            portrait_output_key="seg/{stem}.png",
            retries=0,
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "segment") == "failed"
    assert emu.stats.count(operation="HeadObject") == 2  # the output (whose is it?) and the source (its size)
    assert emu.stats.count(operation="GetObject") == 0
    assert paid(emu)["SegmentCustomizedPortraitPic"] == 0


# -- auto_resize keeps the picture -----------------------------------------------------------------------------------
def test_auto_resize_keeps_16_bit_grayscale_tones() -> None:
    width, height = 2100, 40
    img = Image.new("I;16", (width, height))
    img.putdata([x * 65535 // (width - 1) for _ in range(height) for x in range(width)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    expected = sum(x * 65535 // (width - 1) for x in range(width)) / width / 256  # about 127.5
    data, resized = prepare_image("source_path", "gray16.png", buf.getvalue(), auto_resize=True)
    assert resized
    out = Image.open(io.BytesIO(data)).convert("L")
    assert max(out.size) < 2000
    assert abs(ImageStat.Stat(out).mean[0] - expected) < 3, ImageStat.Stat(out).mean


def test_auto_resize_applies_exif_orientation() -> None:
    img = Image.new("RGB", (2100, 100), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    data, resized = prepare_image("source_path", "sideways.jpg", buf.getvalue(), auto_resize=True)
    out = Image.open(io.BytesIO(data))
    assert resized
    assert out.height > out.width and max(out.size) < 2000, out.size


# -- mapped instances never overwrite each other ---------------------------------------------------------------------
def _colliding_sources(emu: Any, mode: str, tmp_path: Path) -> list[str]:
    """Two different images whose outputs map to one key (``{stem}`` is ``x`` for both); their labels."""
    images = [subject_png(32, (200, 30, 30)), subject_png(32, (30, 30, 200))]
    if mode == "upload":
        paths = [tmp_path / folder / "x.png" for folder in ("a", "b")]
        for path, image in zip(paths, images, strict=True):
            path.parent.mkdir()
            path.write_bytes(image)
        return [str(p) for p in paths]
    for key, image in zip(("a/x.png", "b/x.png"), images, strict=True):
        emu.put_object(BUCKET, key, image)
    return [f"cos://{BUCKET}/a/x.png", f"cos://{BUCKET}/b/x.png"]


def _mapped_matting(mode: str, sources: list[str], output_key: str, **kwargs: Any) -> None:
    """``PortraitMattingOperator.partial(output_key=...).expand(...)`` over the two sources, in ``mode``."""
    common = {"task_id": "t", "retries": 2, "mode": mode, "bucket": BUCKET, "output_key": output_key, **kwargs}
    if mode == "upload":  # the originals go to distinct keys; only the results collide
        PortraitMattingOperator.partial(**common).expand_kwargs(
            [{"source_path": path, "upload_key": f"up/{i}/x.png"} for i, path in enumerate(sources)]
        )
    else:
        PortraitMattingOperator.partial(**common).expand(source_key=[s.split(f"{BUCKET}/", 1)[1] for s in sources])


@pytest.mark.parametrize("operator", ["bda", "download", "cloud", "upload"])
def test_mapped_instances_that_collide_fail_naming_both_sources(
    tencent_conn: Any, operator: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Download mode and BDA write x-cos-meta-source with the object; in cloud and upload mode CI writes the result
    and the operator tags it with its source right after. Either way the second instance finds the first one's
    output, fails before paying, and names both sources."""
    emu = tencent_conn
    sources = _colliding_sources(emu, operator, tmp_path)
    with DAG(f"hardening_collide_{operator}", schedule=None, start_date=START) as dag:
        if operator == "bda":
            SegmentPortraitPartsOperator.partial(
                task_id="t", retries=2, parts=["Face"], bucket=BUCKET, portrait_output_key="collide/{stem}.png"
            ).expand(source_key=["a/x.png", "b/x.png"])
        else:
            _mapped_matting(operator, sources, "collide/{stem}.png")
    dr = run_dag(dag, logical_date=START)
    states = [state(dr, "t", i) for i in range(2)]
    assert sorted(states) == ["failed", "success"], states  # whichever ran first owns the output
    winner, loser = (0, 1) if states[0] == "success" else (1, 0)
    assert dr.get_task_instance("t", map_index=loser).try_number == 1
    assert sum(paid(emu).values()) == 1  # the second instance stopped before paying
    output = emu.get_object(BUCKET, "collide/x.png")
    assert output.metadata.get("source") == sources[winner]
    if operator in ("cloud", "upload"):
        assert emu.stats.count(operation="CopyObject") == 1  # the tag of the winner's result
        assert output.content_type == "image/png"
    out, err = capfd.readouterr()  # the failed instance's log names both sources
    assert f"already holds the output of {sources[winner]}; {sources[loser]} maps to" in out + err

    kept = output.data
    dr = run_dag(dag, logical_date=START)  # a rerun redoes its own output, never the other's
    assert [state(dr, "t", i) for i in range(2)] == states
    assert emu.get_object(BUCKET, "collide/x.png").metadata.get("source") == sources[winner]
    assert emu.get_object(BUCKET, "collide/x.png").data == kept  # the same source makes the same result


@pytest.mark.parametrize("mode", ["cloud", "upload"])
def test_mapped_instances_with_distinct_outputs_are_tagged_and_never_paid_twice(
    tencent_conn: Any, mode: str, tmp_path: Path
) -> None:
    emu = tencent_conn
    sources = _colliding_sources(emu, mode, tmp_path)
    with DAG(f"hardening_distinct_{mode}", schedule=None, start_date=START) as dag:
        _mapped_matting(mode, sources, "own/{stem}-{{ ti.map_index }}.png", if_exists="skip")
    dr = run_dag(dag, logical_date=START)
    assert [state(dr, "t", i) for i in range(2)] == ["success", "success"]
    assert sum(paid(emu).values()) == 2 and emu.stats.count(operation="CopyObject") == 2
    outputs = ["own/x-0.png", "own/x-1.png"]
    assert sorted(emu.list_keys(BUCKET, "own/")) == outputs
    assert [emu.get_object(BUCKET, key).metadata.get("source") for key in outputs] == sources

    emu.stats.reset()
    dr = run_dag(dag, logical_date=START)
    assert [state(dr, "t", i) for i in range(2)] == ["success", "success"]
    assert sum(paid(emu).values()) == 0 and emu.stats.count(operation="CopyObject") == 0
    assert [emu.get_object(BUCKET, key).metadata.get("source") for key in outputs] == sources


@pytest.mark.parametrize(("mode", "tagged"), [("cloud", True), ("cloud", False), ("upload", True)])
def test_an_output_replaced_before_it_is_tagged_fails_the_item(
    tencent_conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    mode: str,
    tagged: bool,
) -> None:
    """The race the tag's If-Match closes: another writer replaces the result between CI's write and the tag (here
    as soon as the emulator has stored CI's result). The item fails naming both, never reports success, and the
    other writer's object is left as it is."""
    emu = tencent_conn
    sources = _colliding_sources(emu, mode, tmp_path)
    other = f"cos://{BUCKET}/elsewhere/x.png"
    record = emu.stats.record

    def second_writer(operation: str, bucket: Any, ok: bool, *args: Any, **kwargs: Any) -> None:
        if operation in ("ImageProcess", "PicOperationsUpload") and ok:  # CI's result is stored by now
            metadata = {"source": other} if tagged else {}
            emu.put_object(BUCKET, "race/x.png", b"the other writer's result", metadata=metadata)
        record(operation, bucket, ok, *args, **kwargs)

    monkeypatch.setattr(emu.stats, "record", second_writer)
    where = {"source_path": sources[0], "upload_key": "up/x.png"} if mode == "upload" else {"source_key": "a/x.png"}
    with DAG(f"hardening_race_{mode}_{tagged}", schedule=None, start_date=START) as dag:
        PortraitMattingOperator(task_id="t", retries=2, mode=mode, bucket=BUCKET, output_key="race/{stem}.png", **where)
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "t") == "failed"
    assert dr.get_task_instance("t").try_number == 1  # final: a retry would pay again for a key two sources share
    assert sum(paid(emu).values()) == 1
    assert emu.stats.count(operation="CopyObject", ok=False) == 1 == emu.stats.errors(code="PreconditionFailed")
    raced = emu.get_object(BUCKET, "race/x.png")
    assert raced.data == b"the other writer's result" and raced.metadata.get("source") == (other if tagged else None)
    out, err = capfd.readouterr()
    by = f"by the output of {other}" if tagged else "by another writer"
    assert f"was replaced {by} after CI wrote the output of {sources[0]}" in out + err


def test_a_tag_that_keeps_failing_is_reported_and_never_paid_again(
    tencent_conn: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A throttled or failing tag (after the hook's retries) leaves a correct result without its owner: the item
    stays processed and says so, and the batch runner does not re-queue it (which would pay again)."""
    emu = tencent_conn
    _colliding_sources(emu, "cloud", tmp_path)
    cred = emu.credential()
    extras = {**emu.connection_extras(), **FAST_RETRY}
    conn_id = set_conn(monkeypatch, "tc_fast", cred.secret_id, cred.secret_key, extras)
    emu.set_faults({"seed": 1, "per_operation": {"CopyObject": {"error_rate": 1.0, "errors": ["throttle"]}}})
    try:
        with DAG("hardening_tag_throttled", schedule=None, start_date=START) as dag:
            PortraitMattingOperator(
                task_id="t",
                bucket=BUCKET,
                source_keys=["a/x.png", "b/x.png"],
                output_key="tag/{dir}-{stem}.png",
                tencentcloud_conn_id=conn_id,
            )
        dr = run_dag(dag, logical_date=START)
    finally:
        emu.set_faults(None)
    assert state(dr, "t") == "success"
    docs = xcom(dr, "t")
    assert [(d["status"], d.get("source_tagged")) for d in docs] == [("processed", False)] * 2
    assert paid(emu)["ImageProcess"] == 2
    assert emu.stats.count(operation="CopyObject") == 2 * FAST_RETRY["max_attempts"]
    assert [emu.get_object(BUCKET, f"tag/{d}-x.png").metadata for d in ("a", "b")] == [{}, {}]


def test_mapped_uploads_that_share_an_original_key_fail_naming_both_sources(
    tencent_conn: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Upload mode's original is an output too: it records its source with the upload, and a second source mapped to
    the same upload_key fails before its upload (the paid call) instead of replacing the first one's original."""
    emu = tencent_conn
    sources = _colliding_sources(emu, "upload", tmp_path)
    with DAG("hardening_collide_original", schedule=None, start_date=START) as dag:
        PortraitMattingOperator.partial(
            task_id="t", retries=2, mode="upload", bucket=BUCKET, upload_key="orig/{name}"
        ).expand_kwargs([{"source_path": p, "output_key": f"res/{i}.png"} for i, p in enumerate(sources)])
    dr = run_dag(dag, logical_date=START)
    states = [state(dr, "t", i) for i in range(2)]
    assert sorted(states) == ["failed", "success"], states
    winner, loser = (0, 1) if states[0] == "success" else (1, 0)
    assert dr.get_task_instance("t", map_index=loser).try_number == 1
    assert paid(emu)["PicOperationsUpload"] == 1
    original = emu.get_object(BUCKET, "orig/x.png")
    assert original.metadata == {"source": sources[winner]}
    assert original.data == Path(sources[winner]).read_bytes()
    assert emu.list_keys(BUCKET, "res/") == [f"res/{winner}.png"]
    out, err = capfd.readouterr()
    assert (
        f"Invalid upload_key='orig/x.png': already holds the output of {sources[winner]}; {sources[loser]}" in out + err
    )
