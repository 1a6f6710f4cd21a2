"""`make demo`: the example DAGs end to end against the bundled emulator, with an HTML report and a contact sheet.

Steps: a private Airflow home (SQLite) under .demo/airflow-home; the emulator (persisting to .demo/emulator-data)
on a free loopback port; sample inputs generated with Pillow and uploaded; the `tencentcloud_default` connection
exported as AIRFLOW_CONN_TENCENTCLOUD_DEFAULT; the CI callback listener on a free loopback port; every example
DAG run through `dag.test()` (tasks, deferrals and triggers in this process); then demo-output/index.html and
demo-output/contact_sheet.png. Running it again reuses the emulator data: the image DAGs then skip every paid call.

Exit status: 0 when every DAG run succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import socket
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parent.parent
DEMO_HOME = REPO / ".demo"
AIRFLOW_HOME = DEMO_HOME / "airflow-home"
EMULATOR_DATA = DEMO_HOME / "emulator-data"
STUDIO_INPUTS = DEMO_HOME / "studio-portraits"
OUTPUT = REPO / "demo-output"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def configure_environment(callback_port: int, verbose: bool) -> None:
    """Everything Airflow reads at import time, set before the first `import airflow`."""
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        # A key per run (the metadata DB is fresh too): trigger kwargs and connections are stored encrypted as in
        # production, and the log has no "empty cryptography key" warning.
        "AIRFLOW__CORE__FERNET_KEY": os.environ.get("AIRFLOW__CORE__FERNET_KEY") or Fernet.generate_key().decode(),
        # Callback URLs need a token key; the demo makes one per run unless the shell sets it.
        "AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY": os.environ.get("AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY")
        or secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "WARNING",
        # The triggerer's CI callback listener (dag.test() runs triggers in this process).
        "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_HOST": "127.0.0.1",
        "AIRFLOW__TENCENT_CI__CALLBACK_LISTENER_PORT": str(callback_port),
        "AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL": f"http://127.0.0.1:{callback_port}",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    os.environ.update(env)
    # The demo never reaches the real cloud, whatever the shell exports.
    for var in (
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TENCENTCLOUD_SESSION_TOKEN",
        "AIRFLOW_VAR_TENCENT_CI_BUCKET",
    ):
        os.environ.pop(var, None)


def init_db() -> None:
    """A fresh metadata DB each time: no state from an earlier demo run can interfere."""
    from airflow.utils import db

    db.resetdb()


def start_emulator(reset: bool) -> Any:
    from airflow_provider_tencent_ci.emulator.server import Emulator

    if reset and EMULATOR_DATA.exists():
        import shutil

        shutil.rmtree(EMULATOR_DATA)
    EMULATOR_DATA.mkdir(parents=True, exist_ok=True)
    emu = Emulator(data_dir=EMULATOR_DATA).start()
    name, value = emu.airflow_conn_env("tencentcloud_default")
    os.environ[name] = value
    # Short jobs: the demo's "video" is a few KB and the emulator does not decode it.
    emu.set_job_timing(0.5, 1.5)
    return emu


class Runner:
    """Runs example DAGs with dag.test() and records state, duration and the paid calls each one made."""

    def __init__(self, emulator: Any, dagbag: Any) -> None:
        self.emu = emulator
        self.dagbag = dagbag
        self.results: list[dict[str, Any]] = []

    def run(self, dag_id: str, **kwargs: Any) -> Any:
        from demo import scenario

        dag = self.dagbag.dags[dag_id]
        before = scenario.paid_counts(self.emu)
        started = time.monotonic()
        print(f"\n=== {dag_id} ===", flush=True)
        dr = None
        error = None
        try:
            dr = dag.test(**kwargs)
        except Exception as exc:  # a DAG that cannot run is reported like a failed one
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        state = str(getattr(dr, "state", "error"))
        paid = scenario.paid_calls(before, scenario.paid_counts(self.emu))
        seconds = time.monotonic() - started
        tis = {
            ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): str(ti.state)
            for ti in (dr.get_task_instances() if dr is not None else [])
        }
        print(f"    state={state}  {seconds:.1f}s  paid calls={paid or 'none'}  tasks={tis}", flush=True)
        self.results.append(
            {"dag_id": dag_id, "state": state, "seconds": seconds, "paid": paid, "tasks": tis, "error": error}
        )
        return dr


def xcom(dr: Any, task_id: str) -> Any:
    if dr is None:
        return None
    ti = dr.get_task_instance(task_id)
    return ti.xcom_pull(task_ids=task_id) if ti is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reset", action="store_true", help="wipe the emulator data first (everything is paid again)")
    parser.add_argument("--verbose", action="store_true", help="Airflow task logs at INFO")
    args = parser.parse_args(argv)

    configure_environment(_free_port(), args.verbose)
    logging.getLogger("qcloud_cos").setLevel(logging.WARNING)

    from demo import report, scenario

    print(f"Airflow home: {AIRFLOW_HOME}")
    init_db()
    emu = start_emulator(args.reset)
    print(f"Emulator: {emu.url} (data in {EMULATOR_DATA})")
    runner: Runner | None = None
    try:
        try:
            from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.2
        except ImportError:  # Airflow 3.1
            from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]

        from airflow_provider_tencent_ci.hooks.ci import CIHook

        hook = CIHook()
        bucket = scenario.DEFAULT_BUCKET
        seeded = scenario.seed_daily_inputs(hook, bucket, portraits=3, goods=2)
        video = scenario.seed_video(hook, bucket)
        studio_paths = scenario.write_studio_inputs(STUDIO_INPUTS, count=3)
        uploaded = sum(s.uploaded for g in seeded.values() for s in g) + int(video.uploaded)
        print(f"Seeded {bucket}: {uploaded} new object(s); studio inputs in {STUDIO_INPUTS}")

        bag = DagBag(dag_folder=str(REPO / "example_dags"))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        runner = Runner(emu, bag)

        daily_date = scenario.daily_logical_date(seeded)
        day = (daily_date - timedelta(days=1)).strftime("%Y-%m-%d")
        dr_daily = runner.run("tencent_ci_daily_matting", logical_date=daily_date)
        dr_studio = runner.run("tencent_ci_portrait_studio", run_conf={"local_dir": str(STUDIO_INPUTS)})
        dr_video = runner.run("tencent_ci_video_body", run_conf={"video_key": scenario.VIDEO_KEY})
        job_rows = xcom(dr_video, "collect_results") or []
        dr_events = None
        if job_rows:
            dr_events = runner.run("tencent_ci_event_pipeline", run_conf={"job_id": job_rows[0]["job_id"]})
        else:
            runner.results.append(
                {
                    "dag_id": "tencent_ci_event_pipeline",
                    "state": "not run",
                    "seconds": 0,
                    "paid": {},
                    "tasks": {},
                    "error": "no job from tencent_ci_video_body",
                }
            )

        write_report(
            report,
            hook,
            bucket,
            emu,
            runner.results,
            day=day,
            seeded=seeded,
            studio_paths=studio_paths,
            daily=xcom(dr_daily, "summarize"),
            studio=xcom(dr_studio, "report"),
            jobs=job_rows,
            published=report.mapped_xcom(dr_events, "publish"),
        )
    finally:
        emu.stop()
        try:
            from airflow_provider_tencent_ci.triggers import callback_listener

            callback_listener.reset_listener()
        except Exception:
            pass

    if runner is None:
        return 1
    failed = [r for r in runner.results if r["state"] != "success"]
    print("\n=== summary ===")
    for r in runner.results:
        paid = report.paid_calls_text(r["paid"])
        print(f"  {r['dag_id']:<30} {r['state']:<8} {r['seconds']:6.1f}s  paid calls: {paid}")
    print(f"\nReport:        {OUTPUT / 'index.html'}")
    print(f"Contact sheet: {OUTPUT / 'contact_sheet.png'}")
    print(f"Emulator data: {EMULATOR_DATA}  (run again: the image DAGs skip every paid call; --reset to start over)")
    if failed:
        print(f"FAILED: {', '.join(r['dag_id'] for r in failed)}", file=sys.stderr)
        return 1
    return 0


def write_report(
    report: Any,
    hook: Any,
    bucket: str,
    emu: Any,
    results: list[dict[str, Any]],
    *,
    day: str,
    seeded: Any,
    studio_paths: list[str],
    daily: Any,
    studio: Any,
    jobs: Any,
    published: Any,
) -> None:
    def get(key: str | None) -> bytes | None:
        if not key:
            return None
        try:
            return bytes(hook.get_object_bytes(bucket, key))
        except Exception:
            return None

    def cos(key: str | None) -> str:
        return f"cos://{bucket}/{key}" if key else ""

    sections = []
    # Portrait studio: the contact sheet's rows.
    studio_rows = []
    for row in studio or []:
        local = next((p for p in studio_paths if Path(p).stem == row["portrait"]), None)
        seg_key = row.get("segmentation")
        mask_key = seg_key[: -len(".png")] + ".mask.png" if seg_key else None
        original = Path(local).read_bytes() if local else None
        beautified = get(row.get("beauty"))
        studio_rows.append(
            report.Row(
                row["portrait"],
                [
                    report.Cell("input", original, local or ""),
                    report.Cell("beauty", beautified, cos(row.get("beauty"))),
                    report.Cell(report.BEAUTY_ZOOM, report.beauty_zoom(original, beautified)),
                    report.Cell("matting", get(row.get("matting")), cos(row.get("matting"))),
                    report.Cell("segmentation", get(seg_key), cos(seg_key)),
                    report.Cell("mask", get(mask_key), cos(mask_key)),
                ],
            )
        )
    sections.append(
        report.Section(
            "tencent_ci_portrait_studio",
            "Local portraits uploaded with Pic-Operations + face beauty, then portrait matting, then Head+Hair "
            "segmentation (BDA).",
            studio_rows,
            in_contact_sheet=True,
        )
    )

    daily_rows = []
    for category, group in (("portraits", seeded["portraits"]), ("goods", seeded["goods"])):
        outputs = {Path(k).stem: k for k in ((daily or {}).get(category, {}).get("outputs") or [])}
        for s in group:
            out_key = outputs.get(Path(s.key).stem)
            daily_rows.append(
                report.Row(
                    Path(s.key).name,
                    [
                        report.Cell("input", get(s.key), cos(s.key)),
                        report.Cell("matted", get(out_key), cos(out_key)),
                    ],
                )
            )
    counts = "; ".join(report.status_counts_text(c, daily) for c in ("portraits", "goods"))
    sections.append(
        report.Section(
            "tencent_ci_daily_matting",
            f"Images that arrived on {day} under incoming/, matted in cloud mode (batch, if_exists=skip). {counts}.",
            daily_rows,
        )
    )

    job_rows = []
    for row in jobs or []:
        job_rows.append(
            report.Row(
                f"{row['branch']} ({row['job_id'][:10]}...)",
                [
                    report.Cell("input", None, cos(row.get("input")), note="video (not decoded by the emulator)"),
                    report.Cell(
                        "output",
                        None,
                        cos(row.get("output_key")),
                        note=f"{row.get('state')}, {row.get('output_size')} bytes",
                    ),
                ],
            )
        )
    for doc in published or []:
        job_rows.append(
            report.Row(
                f"published {doc['job_id'][:10]}...",
                [
                    report.Cell("input", None, cos((doc.get("source_output") or {}).get("Object"))),
                    report.Cell(
                        "output", None, cos(doc.get("published_key")), note=f"manifest: {doc.get('manifest_key')}"
                    ),
                ],
            )
        )
    sections.append(
        report.Section(
            "tencent_ci_video_body / tencent_ci_event_pipeline",
            f"SegmentVideoBody jobs (callback-woken deferral and job sensor) and the event pipeline's publication. "
            f"Callbacks delivered by the emulator: {len(emu.callbacks_sent)}.",
            job_rows,
        )
    )

    OUTPUT.mkdir(parents=True, exist_ok=True)
    report.contact_sheet(
        studio_rows, ["input", "beauty", report.BEAUTY_ZOOM, "matting", "segmentation"], OUTPUT / "contact_sheet.png"
    )
    report.write_html(sections, OUTPUT, title="Tencent Cloud Infinite provider - demo results", results=results)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")

    print("\n=== where the outputs are ===")
    for section in sections:
        print(f"{section.title}:")
        for row in section.rows:
            for cell in row.cells:
                if cell.title != "input" and cell.location:
                    print(f"  {row.label:<28} {cell.title:<13} {cell.location}")


if __name__ == "__main__":
    sys.exit(main())
