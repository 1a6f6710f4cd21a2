"""Error mapping, retry counts and auth refusal, counted on the emulator."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import (
    TencentCloudAuthError,
    TencentCloudInvalidRequestError,
    TencentCloudNetworkError,
    TencentCloudNotFoundError,
    TencentCloudParameterError,
    TencentCloudServerError,
    TencentCloudThrottlingError,
)
from airflow_provider_tencent_ci.hooks.bda import BDAHook
from airflow_provider_tencent_ci.hooks.ci import CIHook

from .conftest import BUCKET, FAST_RETRY, set_conn

BAD_KEY = "definitely-not-the-secret-key-42"


def _faults(emu: Any, operation: str, kind: str, rate: float = 1.0, seed: int = 0) -> None:
    emu.set_faults({"seed": seed, "per_operation": {operation: {"error_rate": rate, "errors": [kind]}}})


@pytest.fixture
def bad_key_conn(emu: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    return set_conn(
        monkeypatch, "tc_bad", emu.credential().secret_id, BAD_KEY, {**emu.connection_extras(), **FAST_RETRY}
    )


def _assert_refused(exc: TencentCloudAuthError, secret: str) -> None:
    text = str(exc)
    assert "refused the credential" in text
    assert exc.code and exc.code in text
    assert exc.request_id and exc.request_id in text
    assert secret not in text and secret not in repr(exc)
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)  # no SDK trace


def test_bad_secret_key_is_refused_on_cos(emu: Any, bad_key_conn: str) -> None:
    emu.put_object(BUCKET, "a.txt", b"a")
    with pytest.raises(TencentCloudAuthError) as info:
        CIHook(bad_key_conn).get_object_bytes(BUCKET, "a.txt")
    _assert_refused(info.value, BAD_KEY)
    assert info.value.code == "SignatureDoesNotMatch" and info.value.status_code == 403
    assert emu.stats.count(operation="GetObject") == 1  # auth errors are not retried


def test_bad_secret_key_is_refused_on_ci_jobs_async(emu: Any, bad_key_conn: str) -> None:
    async def run() -> None:
        hook = CIHook(bad_key_conn)
        try:
            await hook.aget_jobs(BUCKET, ["j1"])
        finally:
            await hook.aclose()

    with pytest.raises(TencentCloudAuthError) as info:
        asyncio.run(run())
    _assert_refused(info.value, BAD_KEY)
    assert emu.stats.count(operation="DescribeJobs") == 1


def test_bad_secret_key_is_refused_on_bda(emu: Any, bad_key_conn: str, png_bytes: bytes) -> None:
    with pytest.raises(TencentCloudAuthError) as info:
        BDAHook(bad_key_conn).segment_customized_portrait_pic(
            ["Hair"], image_base64=base64.b64encode(png_bytes).decode()
        )
    _assert_refused(info.value, BAD_KEY)
    assert info.value.code.startswith("AuthFailure")
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic") <= 1


def test_sts_token_is_carried_and_checked(emu: Any, monkeypatch: pytest.MonkeyPatch, png_bytes: bytes) -> None:
    sts = emu.credential(sts=True)
    extras = {**emu.connection_extras(), **FAST_RETRY}
    with_token = set_conn(monkeypatch, "tc_sts", sts.secret_id, sts.secret_key, {**extras, "token": sts.token})
    without = set_conn(monkeypatch, "tc_sts_no_token", sts.secret_id, sts.secret_key, extras)
    wrong = set_conn(monkeypatch, "tc_sts_wrong", sts.secret_id, sts.secret_key, {**extras, "token": "x" * 35})

    emu.put_object(BUCKET, "a.txt", b"a")
    hook = CIHook(with_token)
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"a"  # COS host: x-cos-security-token
    assert hook.get_jobs(BUCKET, ["nope"]).missing == ["nope"]  # CI host: x-ci-security-token

    async def async_query() -> list[str]:
        h = CIHook(with_token)
        try:
            return (await h.aget_jobs(BUCKET, ["nope"])).missing
        finally:
            await h.aclose()

    assert asyncio.run(async_query()) == ["nope"]
    bda = BDAHook(with_token).segment_customized_portrait_pic(
        ["Face"], image_base64=base64.b64encode(png_bytes).decode()
    )
    assert bda["RequestId"]

    for conn_id in (without, wrong):
        with pytest.raises(TencentCloudAuthError) as info:
            CIHook(conn_id).get_object_bytes(BUCKET, "a.txt")
        assert sts.token not in str(info.value) and sts.secret_key not in str(info.value)
        assert info.value.request_id
    with pytest.raises(TencentCloudAuthError):
        BDAHook(without).segment_customized_portrait_pic(["Face"], url="https://example.com/a.png")


def test_throttling_is_retried_up_to_max_attempts(emu: Any, fast_conn: str) -> None:
    emu.put_object(BUCKET, "a.txt", b"a")
    _faults(emu, "GetObject", "throttle")
    with pytest.raises(TencentCloudThrottlingError) as info:
        CIHook(fast_conn).get_object_bytes(BUCKET, "a.txt")
    assert info.value.code == "SlowDown" and info.value.request_id
    assert emu.stats.count(operation="GetObject") == 3  # max_attempts, and no SDK-level retries on top


def test_server_errors_are_retried_then_succeed(emu: Any, fast_conn: str) -> None:
    emu.put_object(BUCKET, "a.txt", b"a")
    _faults(emu, "GetObject", "5xx")
    with pytest.raises(TencentCloudServerError) as info:
        CIHook(fast_conn).get_object_bytes(BUCKET, "a.txt")
    assert info.value.code == "InternalError" and info.value.status_code == 500
    assert emu.stats.count(operation="GetObject") == 3

    # Half the requests fail (seeded): every call still succeeds and errors + successes add up.
    emu.stats.reset()
    _faults(emu, "HeadObject", "5xx", rate=0.5, seed=7)
    hook = CIHook(fast_conn)
    for _ in range(6):
        # Three failures in a row are possible; the counts below still hold.
        with contextlib.suppress(TencentCloudServerError):
            assert hook.head_object(BUCKET, "a.txt") is not None
    ok = emu.stats.count(operation="HeadObject", ok=True)
    failed = emu.stats.count(operation="HeadObject", ok=False)
    assert failed >= 1 and ok >= 1 and ok + failed <= 18


def test_network_errors_are_retried(emu: Any, fast_conn: str) -> None:
    emu.put_object(BUCKET, "a.txt", b"a")
    _faults(emu, "HeadObject", "reset")
    with pytest.raises(TencentCloudNetworkError):
        CIHook(fast_conn).head_object(BUCKET, "a.txt")
    assert emu.stats.count(operation="HeadObject") == 3


def test_parameter_and_not_found_errors_are_not_retried(emu: Any, fast_conn: str, png_bytes: bytes) -> None:
    hook = CIHook(fast_conn)
    emu.put_object(BUCKET, "img/in.png", png_bytes, content_type="image/png")
    with pytest.raises(TencentCloudParameterError) as info:
        hook.ci_process(BUCKET, "img/in.png", "AIPortraitMatting", {"padding-layout": "5000x1"})
    assert info.value.code == "InvalidArgument" and info.value.request_id and info.value.status_code == 400
    assert "padding-layout" in str(info.value)
    assert emu.stats.count(operation="CIProcess") == 1

    with pytest.raises(TencentCloudNotFoundError) as nf:
        hook.get_object_bytes(BUCKET, "missing.txt")
    assert nf.value.code == "NoSuchKey" and nf.value.request_id and nf.value.request_id in str(nf.value)
    assert emu.stats.count(operation="GetObject") == 1


def test_job_submission_retries_only_throttling(emu: Any, fast_conn: str) -> None:
    from .test_ci_hook import SVB_REQUEST

    emu.put_object(BUCKET, "in/video.mp4", b"\x00" * 64)
    hook = CIHook(fast_conn)
    _faults(emu, "CreateJob", "5xx")
    with pytest.raises(TencentCloudServerError):
        hook.submit_job(BUCKET, SVB_REQUEST)
    assert emu.stats.count(operation="CreateJob") == 1  # a 5xx may have created the job: not resubmitted
    emu.stats.reset()
    _faults(emu, "CreateJob", "throttle")
    with pytest.raises(TencentCloudThrottlingError):
        hook.submit_job(BUCKET, SVB_REQUEST)
    assert emu.stats.count(operation="CreateJob") == 3


def test_async_calls_retry_with_the_same_policy(emu: Any, fast_conn: str) -> None:
    async def run(call: str) -> Any:
        hook = CIHook(fast_conn)
        try:
            if call == "get":
                return await hook.aget_jobs(BUCKET, ["j1"])
            return await hook.alist_jobs(BUCKET, "SegmentVideoBody")
        finally:
            await hook.aclose()

    _faults(emu, "DescribeJobs", "throttle")
    with pytest.raises(TencentCloudThrottlingError) as info:
        asyncio.run(run("get"))
    assert info.value.request_id
    assert emu.stats.count(operation="DescribeJobs") == 3

    _faults(emu, "ListJobs", "5xx")
    with pytest.raises(TencentCloudServerError):
        asyncio.run(run("list"))
    assert emu.stats.count(operation="ListJobs") == 3

    _faults(emu, "ListJobs", "reset")
    emu.stats.reset()
    with pytest.raises(TencentCloudNetworkError):
        asyncio.run(run("list"))
    assert emu.stats.count(operation="ListJobs") == 3


def test_bda_retries_throttling_and_server_faults_once_each_attempt(emu: Any, fast_conn: str, png_bytes: bytes) -> None:
    image = base64.b64encode(png_bytes).decode()
    hook = BDAHook(fast_conn)
    _faults(emu, "SegmentCustomizedPortraitPic", "throttle")
    with pytest.raises(TencentCloudThrottlingError) as info:
        hook.segment_customized_portrait_pic(["Hair"], image_base64=image)
    assert info.value.code.startswith("RequestLimitExceeded") and info.value.request_id
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic") == 3

    emu.stats.reset()
    _faults(emu, "SegmentCustomizedPortraitPic", "5xx")
    with pytest.raises(TencentCloudServerError):
        hook.segment_customized_portrait_pic(["Hair"], image_base64=image)
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic") == 3

    emu.set_faults(None)
    emu.stats.reset()
    result = hook.segment_customized_portrait_pic(["Hair", "Face"], image_base64=image)
    assert result["PortraitImage"] and result["MaskImage"] and isinstance(result["ImageRects"], list)
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic", ok=True) == 1


def test_bda_parameter_error_is_not_retried(emu: Any, fast_conn: str) -> None:
    with pytest.raises(TencentCloudParameterError) as info:
        BDAHook(fast_conn).segment_customized_portrait_pic(["Hair"], image_base64="bm90LWFuLWltYWdl")
    assert info.value.code and info.value.request_id
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic") == 1


def test_test_connection_true_and_false(
    emu: Any, fast_conn: str, bad_key_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``airflow connections test`` semantics: STS GetCallerIdentity (needs no permission), never a secret shown."""
    from airflow_provider_tencent_ci.emulator.sts import IDENTITY

    cred = emu.credential()
    ok, message = CIHook(fast_conn).test_connection()
    assert ok, message
    assert emu.stats.count(operation="GetCallerIdentity", ok=True) == 1
    assert emu.stats.count(operation="ListBuckets") == 0  # no COS permission needed
    assert message == (
        f"Authenticated as account {IDENTITY['AccountId']}, CAMUser {IDENTITY['PrincipalId']}, "
        f"ARN {IDENTITY['Arn']}, key AKID…{cred.secret_id[-4:]}"
    )
    assert cred.secret_key not in message and cred.secret_id not in message

    ok, message = CIHook(bad_key_conn).test_connection()
    assert not ok and "refused the credential" in message and BAD_KEY not in message
    assert "AuthFailure.SignatureFailure" in message
    assert emu.stats.count(operation="GetCallerIdentity", ok=False) == 1  # auth errors are not retried

    sts = emu.credential(sts=True)
    extras = {**emu.connection_extras(), **FAST_RETRY}
    with_token = set_conn(monkeypatch, "tc_sts_test", sts.secret_id, sts.secret_key, {**extras, "token": sts.token})
    ok, message = CIHook(with_token).test_connection()
    assert ok and f"key AKID…{sts.secret_id[-4:]}" in message and sts.token not in message

    dead = set_conn(
        monkeypatch, "tc_dead", "AKIDX", "k" * 20, {"use_https": False, "proxy": "http://127.0.0.1:9", **FAST_RETRY}
    )
    ok, message = CIHook(dead).test_connection()
    assert not ok and "no answer" in message

    ok, message = CIHook("tc_not_defined_anywhere").test_connection()
    assert not ok and message


def test_test_connection_honours_sts_endpoint(emu: Any, monkeypatch: pytest.MonkeyPatch, json_server: Any) -> None:
    """GetCallerIdentity goes where the connection's ``sts_endpoint`` says (a loopback one directly, not through the
    proxy), signed with TC3 for service sts, version 2018-08-13. The server stands in for the real STS."""
    identity = {"AccountId": "200000000001", "Type": "CAMUser", "PrincipalId": "200000000009", "UserId": "200000000009"}
    identity["Arn"] = "qcs::cam::uin/200000000001:uin/200000000009"
    server = json_server(lambda method, path, body: (200, {"Response": {**identity, "RequestId": "sts-1"}}))
    cred = emu.credential()
    extras = {**emu.connection_extras(), **FAST_RETRY, "sts_endpoint": server.hostport}
    conn = set_conn(monkeypatch, "tc_sts_endpoint", cred.secret_id, cred.secret_key, extras)
    ok, message = CIHook(conn).test_connection()
    assert ok and message == (
        f"Authenticated as account 200000000001, CAMUser 200000000009, ARN {identity['Arn']}, "
        f"key AKID…{cred.secret_id[-4:]}"
    )
    assert len(server.requests) == 1
    method, _path, body, headers = server.requests[0]
    assert method == "POST" and body == b"{}"
    assert headers["X-TC-Action"] == "GetCallerIdentity" and headers["X-TC-Version"] == "2018-08-13"
    assert (
        f"Credential={cred.secret_id}/" in headers["Authorization"] and "/sts/tc3_request" in headers["Authorization"]
    )
    assert emu.stats.count() == 0  # not through the emulator's proxy


def test_each_retry_logs_one_line_with_a_bounded_jittered_delay(
    emu: Any, fast_conn: str, capfd: pytest.CaptureFixture[str]
) -> None:
    emu.put_object(BUCKET, "a.txt", b"a")
    _faults(emu, "GetObject", "throttle")
    capfd.readouterr()
    with pytest.raises(TencentCloudThrottlingError):
        CIHook(fast_conn).get_object_bytes(BUCKET, "a.txt")
    out, err = capfd.readouterr()  # the hook logs through Airflow's structlog handlers
    lines = [line for line in (out + err).splitlines() if "retrying in" in line]
    assert len(lines) == FAST_RETRY["max_attempts"] - 1  # a wait between attempts, none after the last
    for attempt, line in enumerate(lines, start=1):
        assert "code=SlowDown" in line and f"(attempt {attempt} of {FAST_RETRY['max_attempts']}); retrying in" in line
        delay = float(line.split("retrying in ", 1)[1].split("s", 1)[0])
        cap = min(FAST_RETRY["retry_max_delay"], FAST_RETRY["retry_base_delay"] * 2 ** (attempt - 1))
        assert 0 <= delay <= cap + 0.005  # full jitter, printed with two decimals


# ---- which refusals are final ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("InvalidArgument", 400, TencentCloudInvalidRequestError),
        ("MalformedXML", 400, TencentCloudInvalidRequestError),
        ("InvalidParameter", None, TencentCloudInvalidRequestError),
        ("InvalidParameter.InvalidParameter", None, TencentCloudInvalidRequestError),
        ("InvalidParameterValue.UrlIllegal", None, TencentCloudInvalidRequestError),
        ("MissingParameter", None, TencentCloudInvalidRequestError),
        ("FailedOperation.ImageDecodeFailed", None, TencentCloudInvalidRequestError),
        # Not documented as the caller's fault: the hook does not retry them, Airflow may.
        ("BadDigest", 400, TencentCloudParameterError),
        ("RequestTimeout", 400, TencentCloudParameterError),
        ("SomethingUndocumented", 400, TencentCloudParameterError),
        ("FailedOperation.SegmentFailed", None, TencentCloudParameterError),
        # Throttling, server faults and auth keep their classes.
        ("SlowDown", 503, TencentCloudThrottlingError),
        ("RequestLimitExceeded", None, TencentCloudThrottlingError),
        ("InternalError", 500, TencentCloudServerError),
        ("FailedOperation.InnerError", None, TencentCloudServerError),
        ("InvalidAccessKeyId", 403, TencentCloudAuthError),
    ],
)
def test_error_table_marks_the_callers_faults_final(code: str, status: int | None, expected: type) -> None:
    from airflow_provider_tencent_ci.exceptions import AirflowFailException, classify

    cls = classify(code, status)
    assert cls is expected
    assert issubclass(cls, AirflowFailException) is (cls is TencentCloudInvalidRequestError)
    assert cls.retryable is (cls in (TencentCloudThrottlingError, TencentCloudServerError))


def test_a_final_error_survives_pickling() -> None:
    """Airflow ships exceptions between processes: the class (and so its finality) and the fields survive."""
    import pickle

    err = TencentCloudInvalidRequestError("bad", code="InvalidArgument", request_id="r1", status_code=400)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is TencentCloudInvalidRequestError and str(back) == str(err) and back.code == "InvalidArgument"


def test_a_parameter_error_the_service_answers_fails_the_task_once(
    emu: Any, fast_conn: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """CreateJob refused with CI's 400 InvalidArgument (the input video is not in the bucket: a rule local validation
    cannot check, the emulator checks it server-side as CI does): with retries=2 the task fails on its first try,
    one CreateJob reaches the service, and the log names the code and the service's message."""
    from datetime import timedelta

    from airflow.sdk import DAG

    from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator
    from tests.conftest import run_dag
    from tests.operators.image_support import START, state

    with DAG("service_parameter_error_is_final", schedule=None, start_date=START) as dag:
        SegmentVideoBodyOperator(
            task_id="submit",
            tencentcloud_conn_id=fast_conn,
            retries=2,
            retry_delay=timedelta(0),
            bucket=BUCKET,
            input_object="videos/not-uploaded.mp4",
            output_object="out/person.mp4",
            wait_for_completion=False,
        )
    capfd.readouterr()
    dr = run_dag(dag, logical_date=START)
    out, err = capfd.readouterr()
    log = out + err + caplog.text
    ti = dr.get_task_instance("submit")
    assert state(dr, "submit") == "failed", log[-3000:]
    assert ti.try_number == 1, f"retried: try {ti.try_number}"
    assert emu.stats.count(operation="CreateJob") == 1
    assert "code=InvalidArgument" in log and "videos/not-uploaded.mp4" in log and "does not exist" in log
    assert emu.credential().secret_key not in log
