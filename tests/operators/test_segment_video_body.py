"""SegmentVideoBodyOperator against the emulator: validation, dag.test() runs (worker polling and deferral),
failures with CI's message, Pause, on_kill, and the extra link."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import CIJobFailedError, ParameterValidationError
from airflow_provider_tencent_ci.operators.segment_video_body import (
    USER_DATA_USER_MAX_LEN,
    SegmentVideoBodyOperator,
    build_svb_request,
)
from tests.conftest import run_dag
from tests.operators.image_support import START, state, xcom
from tests.triggers.helpers import BUCKET, INPUT, job_state, put_input, wait_until


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(0.1, 0.3)
    put_input(tencent_conn)
    return tencent_conn


class FakeTI:
    """The few TaskInstance attributes execute() reads when it is called outside the task runner."""

    def __init__(self, run_id: str = "manual__1", task_id: str = "svb", dag_id: str = "d") -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, run_id, -1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def ctx(ti: FakeTI) -> Any:
    """A minimal context for calling execute() directly (no task_state_store: the pre-3.3 path)."""
    return {"ti": ti}


def _op(**kw: Any) -> SegmentVideoBodyOperator:
    kw.setdefault("task_id", "svb")
    kw.setdefault("bucket", "examplebucket")
    kw.setdefault("input_object", INPUT)
    kw.setdefault("output_object", "out/person.mp4")
    kw.setdefault("poll_interval", 0.1)
    return SegmentVideoBodyOperator(**kw)


# -- validation -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"mode": "Cutout"}, "mode"),
        ({"segment_type": "CatSeg"}, "segment_type"),
        ({"mode": "Foreground", "background_red": 256}, "background_red"),
        ({"mode": "Foreground", "background_blue": -1}, "background_blue"),
        ({"background_green": 10}, "background_green"),  # Mask mode: background colours do not apply
        ({"binary_threshold": "x"}, "binary_threshold"),
        ({"segment_type": "SolidColorSeg", "remove_red": 300}, "remove_red"),
        ({"remove_green": 5}, "remove_green"),  # HumanSeg: remove colours do not apply
        ({"mode": "Combination"}, "background_logo_url"),
        (
            {
                "mode": "Combination",
                "background_logo_url": "https://otherbucket-1250000000.cos.ap-guangzhou.myqcloud.com/bg.png",
            },
            "background_logo_url",
        ),
        ({"background_logo_url": "bg.png"}, "background_logo_url"),  # only for Combination
        ({"user_data": "x" * (USER_DATA_USER_MAX_LEN + 1)}, "user_data"),
        ({"user_data": "caf\u00e9"}, "user_data"),
        ({"job_level": 3}, "job_level"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url"),
        ({"callback_format": "YAML"}, "callback_format"),
        ({"callback_type": "Kafka"}, "callback_type"),
        ({"callback_type": "TDMQ"}, "callback_mq_config"),
        (
            {"callback_type": "TDMQ", "callback_mq_config": {"MqRegion": "bj", "MqMode": "Pipe", "MqName": "q"}},
            "callback_mq_config.MqMode",
        ),
        ({"callback_mq_config": {"MqRegion": "bj", "MqMode": "Queue", "MqName": "q"}}, "callback_mq_config"),
        ({"use_callback_listener": True, "callback_url": "http://example.com/cb"}, "callback_url"),
        ({"output_object": "out/"}, "output_object"),
        ({"input_object": ""}, "input_object"),
        ({"max_wait": 0}, "max_wait"),
    ],
)
def test_invalid_parameters_fail_at_construction(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ParameterValidationError) as info:
        _op(**kwargs)
    assert info.value.param == param
    assert param in str(info.value)


def test_valid_full_request() -> None:
    request = build_svb_request(
        {
            "bucket": "examplebucket-1250000000",
            "input_object": INPUT,
            "output_object": "o.mp4",
            "mode": "Combination",
            "segment_type": "SolidColorSeg",
            "background_logo_url": "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/bg.png",
            "binary_threshold": "12",
            "remove_red": 0,
            "remove_green": 255,
            "remove_blue": "7",
            "job_level": "2",
            "callback_type": "TDMQ",
            "callback_format": "JSON",
            "callback_mq_config": {"MqRegion": "bj", "MqMode": "Queue", "MqName": "q"},
        }
    )
    svb = request["Operation"]["SegmentVideoBody"]
    assert svb == {
        "Mode": "Combination",
        "SegmentType": "SolidColorSeg",
        "BinaryThreshold": "12",
        "RemoveRed": "0",
        "RemoveGreen": "255",
        "RemoveBlue": "7",
        "BackgroundLogoUrl": "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/bg.png",
    }
    assert request["Operation"]["JobLevel"] == "2"
    assert request["CallBackMqConfig"] == {"MqRegion": "bj", "MqMode": "Queue", "MqName": "q"}


def test_templated_values_are_checked_after_rendering(emu: Any) -> None:
    op = _op(mode="{{ params.mode }}", background_red="{{ params.red }}")  # accepted while templated
    op.mode, op.background_red = "Foreground", "999"  # what rendering produced
    with pytest.raises(ParameterValidationError, match="background_red"):
        op.execute(ctx(FakeTI()))
    assert emu.stats.count() == 0  # failed before any request


# -- dag.test() runs ----------------------------------------------------------------------------------------
def _dag(dag_id: str, **op_kwargs: Any) -> Any:
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        _op(**op_kwargs)
    return dag


@pytest.mark.parametrize("deferrable", [False, True])
def test_success_returns_jobs_detail(emu: Any, deferrable: bool) -> None:
    dr = run_dag(_dag(f"svb_success_{deferrable}", deferrable=deferrable, user_data="mine"), logical_date=START)
    assert state(dr, "svb") == "success"
    detail = xcom(dr, "svb")
    assert detail["State"] == "Success"
    assert detail["Operation"]["MediaResult"]["OutputFile"]["ObjectName"] == "out/person.mp4"
    assert detail["Operation"]["UserData"].startswith("mine;airflow-idem:")
    assert emu.get_object("examplebucket", "out/person.mp4") is not None
    assert emu.stats.count(operation="CreateJob") == 1
    link = xcom(dr, "svb", key="_link_CIJobLink")
    assert link == f"{emu.console_base_url}/jobs/{emu.bucket_name('examplebucket')}/{detail['JobId']}"
    stored = _task_state_job_id(dr)
    if stored is not _NO_STORE:  # Airflow >= 3.3: the job id was persisted right after submit
        assert stored is not None and detail["JobId"] in stored


_NO_STORE = object()


def _task_state_job_id(dr: Any) -> Any:
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:  # Airflow < 3.3
        return _NO_STORE
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(TaskStateStoreModel)
            .filter_by(dag_id=dr.dag_id, run_id=dr.run_id, task_id="svb", key="tencent_ci_job_id")
            .one_or_none()
        )
        return None if row is None else str(row.value)


@pytest.mark.parametrize("deferrable", [False, True])
def test_failed_job_fails_the_task(emu: Any, deferrable: bool) -> None:
    emu.set_job_timing(0.5, 30)

    def fail_it() -> None:
        wait_until(lambda: len(emu.jobs) == 1, timeout=30)
        emu.force_job_outcome(emu.jobs[0]["JobId"], "Failed", code="InputError", message="cannot read input")

    thread = threading.Thread(target=fail_it)
    thread.start()
    dr = run_dag(_dag(f"svb_failed_{deferrable}", deferrable=deferrable), logical_date=START)
    thread.join()
    assert state(dr, "svb") == "failed"


@pytest.mark.parametrize("outcome", ["Failed", "Cancel"])
def test_failure_carries_ci_code_and_message(emu: Any, outcome: str) -> None:
    emu.set_job_timing(30, 30)
    op = _op(deferrable=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(ctx(FakeTI()))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: len(emu.jobs) == 1)
    emu.force_job_outcome(emu.jobs[0]["JobId"], outcome, code="VideoError", message="unsupported codec")
    thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], CIJobFailedError)
    assert errors[0].code == "VideoError" and "unsupported codec" in str(errors[0]) and outcome in str(errors[0])


def test_deferred_failure_event_raises_ci_message() -> None:
    op = _op(deferrable=True)
    event = {
        "status": "failed",
        "job_id": "a1",
        "state": "Cancel",
        "code": "Canceled",
        "message": "user cancel",
        "job": {"JobId": "a1", "State": "Cancel", "Code": "Canceled", "Message": "user cancel"},
    }
    with pytest.raises(CIJobFailedError, match="user cancel") as info:
        op.execute_complete({}, event)  # type: ignore[arg-type]
    assert info.value.code == "Canceled"


def test_pause_keeps_waiting_unless_fail_on_pause(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    results: list[Any] = []
    op = _op(deferrable=False)
    thread = threading.Thread(target=lambda: results.append(op.execute(ctx(FakeTI()))))
    thread.start()
    wait_until(lambda: len(emu.jobs) == 1)
    job_id = emu.jobs[0]["JobId"]
    emu.pause_job(job_id)
    wait_until(lambda: op._job_state == "Pause")
    assert thread.is_alive()
    emu.force_job_outcome(job_id, "Success")
    thread.join(30)
    assert results and results[0]["State"] == "Success"

    paused = _op(deferrable=False, fail_on_pause=True)
    emu.reset()
    emu.set_job_timing(30, 30)
    put_input(emu)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            paused.execute(ctx(FakeTI(run_id="other")))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: len(emu.jobs) == 1)
    emu.pause_job(emu.jobs[0]["JobId"])
    thread.join(30)
    assert errors and isinstance(errors[0], CIJobFailedError) and "paused" in str(errors[0])


def test_on_kill_cancels_the_job(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    op = _op(deferrable=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(ctx(FakeTI()))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: op._job_id is not None)
    op.on_kill()
    thread.join(30)
    assert job_state(emu, op._job_id) == "Cancel"  # type: ignore[arg-type]
    assert emu.stats.count(operation="CancelJob") == 1


def test_on_kill_without_cancel_on_kill_leaves_the_job(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    op = _op(deferrable=False, wait_for_completion=False, cancel_on_kill=False)
    job = op.execute(ctx(FakeTI()))
    op.on_kill()
    assert job_state(emu, job["JobId"]) == "Submitted"
    assert emu.stats.count(operation="CancelJob") == 0


def test_on_kill_refused_for_a_started_job_is_logged(emu: Any) -> None:
    emu.set_job_timing(0.0, 30)
    op = _op(deferrable=False, wait_for_completion=False)
    job = op.execute(ctx(FakeTI()))
    wait_until(lambda: job_state(emu, job["JobId"]) == "Running")
    op.on_kill()  # CI refuses: logged, not raised
    assert job_state(emu, job["JobId"]) == "Running"


def test_wait_for_completion_false_returns_submitted(emu: Any) -> None:
    emu.set_job_timing(30, 30)
    job = _op(deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert job["State"] == "Submitted" and job["Tag"] == "SegmentVideoBody"
    assert job["Input"]["BucketId"] == BUCKET


@pytest.mark.parametrize("fmt", ["XML", "JSON"])
def test_deferred_with_callback_listener(emu: Any, fmt: str) -> None:
    import tests.triggers.helpers  # noqa: F401  (sets the [tencent_ci] listener config)

    emu.set_job_timing(0.3, 0.3)
    dag = _dag(
        f"svb_callback_{fmt}",
        deferrable=True,
        use_callback_listener=True,
        callback_format=fmt,
        callback_fallback_poll_interval=60,
    )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "svb") == "success"
    job_id = xcom(dr, "svb")["JobId"]
    sent = [c for c in emu.callbacks_sent if c["job_id"] == job_id]
    assert sent and sent[0]["status"] == 200 and sent[0]["format"] == fmt
    assert "/tencent-ci/cb/" in sent[0]["url"]


# -- metadata: lineage and renderers ------------------------------------------------------------------------
def test_lineage_is_the_input_video_to_the_output_video(tencent_conn: Any) -> None:
    op = _op(input_object="/videos/in.mp4", output_bucket="otherbucket", output_object="out/fg.mp4")
    assert op.lineage_datasets() == {
        "inputs": [("cos://examplebucket-1250000000", "videos/in.mp4")],
        "outputs": [("cos://otherbucket-1250000000", "out/fg.mp4")],
    }
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        assert op.get_openlineage_facets_on_complete(None) is None  # lineage is optional, never an import error
    else:
        facets = op.get_openlineage_facets_on_complete(None)
        assert [d.name for d in facets.inputs] == ["videos/in.mp4"]
        assert [d.name for d in facets.outputs] == ["out/fg.mp4"]


def test_dict_parameters_render_as_json() -> None:
    assert SegmentVideoBodyOperator.template_fields_renderers == {"callback_mq_config": "json"}
    assert "callback_mq_config" in SegmentVideoBodyOperator.template_fields
