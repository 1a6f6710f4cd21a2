"""SegmentVideoBodyOperator with use_callback_listener: the callback base URL must be reachable by the cloud it
targets (issue 12 item 4), and the callback URL's token is a bearer secret (issue 14 item 5).

"The real cloud" here is a connection with no ``proxy`` and no custom endpoint, whose traffic still lands in the
emulator through the environment's ``HTTP_PROXY`` (the SDK's requests honour it): a refused task must send nothing,
and the emulator's stats prove it; the same connection with a public base URL shows that the route does reach it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.jobs.callbacks import unreachable_reason
from tests.operators.test_segment_video_body import FakeTI, _op, ctx
from tests.triggers.helpers import put_input

try:
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 3.1
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,attr-defined]

CLOUD_CONN = "tencentcloud_cloudlike"


@pytest.fixture
def emu(tencent_conn: Any) -> Any:
    tencent_conn.set_job_timing(30, 30)
    put_input(tencent_conn)
    return tencent_conn


@pytest.fixture
def cloudlike_conn(emu: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A connection that targets Tencent's own endpoints (no proxy extra, no custom endpoint)."""
    cred = emu.credential()
    extras = {k: v for k, v in emu.connection_extras().items() if k != "proxy"}
    value = {"conn_type": "tencentcloud", "login": cred.secret_id, "password": cred.secret_key, "extra": extras}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CLOUD_CONN.upper()}", json.dumps(value))
    monkeypatch.setenv("HTTP_PROXY", emu.url)
    monkeypatch.setenv("http_proxy", emu.url)
    return CLOUD_CONN


def _requests(emu: Any) -> int:
    return emu.stats.count()


def _callback_url(emu: Any) -> str:
    """The CallBack URL CI was given (the emulator's job record; JobsDetail does not echo it)."""
    (job,) = emu.jobs
    return str(job["callback"]["url"])


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:8799",
        "http://localhost:8799/cb",
        "http://10.1.2.3",
        "https://172.20.0.5/cb",
        "http://192.168.1.10:8080",
        "http://[fc00::1]:8799",
        "http://169.254.169.254",
        "http://[fe80::1]",
        "http://0.0.0.0:8799",
        "http://[::1]:8799",
        "http://[::ffff:127.0.0.1]",
    ],
)
def test_unreachable_callback_base_fails_before_any_request(
    emu: Any, cloudlike_conn: str, monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", base)
    emu.stats.reset()
    op = _op(tencentcloud_conn_id=cloudlike_conn, deferrable=True, use_callback_listener=True, reattach_lookback=3600)
    with pytest.raises(ParameterValidationError, match="callback_base_url") as info:
        op.execute(ctx(FakeTI()))
    assert "[tencent_ci] callback_base_url" in str(info.value) and "public https URL" in str(info.value)
    assert _requests(emu) == 0  # no lookup, no CreateJob: nothing paid, nothing sent
    assert emu.jobs == []


def test_public_callback_base_is_accepted_on_the_same_route(
    emu: Any, cloudlike_conn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "https://ci-callbacks.example.com/tencent-ci")
    emu.stats.reset()
    with pytest.raises(TaskDeferred):
        _op(tencentcloud_conn_id=cloudlike_conn, deferrable=True, use_callback_listener=True).execute(ctx(FakeTI()))
    assert emu.stats.count(operation="CreateJob") == 1  # the env proxy route reaches the emulator
    assert _callback_url(emu).startswith("https://ci-callbacks.example.com/tencent-ci/")


def test_loopback_stays_allowed_against_the_emulator(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "http://127.0.0.1:8799")
    with pytest.raises(TaskDeferred):
        _op(deferrable=True, use_callback_listener=True).execute(ctx(FakeTI()))
    assert emu.stats.count(operation="CreateJob") == 1


def test_without_the_listener_no_base_url_rule_applies(emu: Any, cloudlike_conn: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "http://127.0.0.1:8799")
    job = _op(tencentcloud_conn_id=cloudlike_conn, deferrable=False, wait_for_completion=False).execute(ctx(FakeTI()))
    assert job["State"] == "Submitted"


@pytest.mark.parametrize("host", ["ci-callbacks.example.com", "203.0.113.9.nip.io", "8.8.8.8", "[2001:4860::8888]"])
def test_public_hosts_are_not_judged_unreachable(host: str) -> None:
    assert unreachable_reason(f"https://{host}/cb") is None


def test_callback_token_is_masked_and_kept_out_of_logs_and_xcom(
    emu: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL", "http://127.0.0.1:8799/cb")
    # cos-python-sdk-v5 logs request bodies at INFO when its loggers are turned up: nothing of ours may carry the token.
    monkeypatch.setattr(logging.getLogger("qcloud_cos"), "level", logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    ti = FakeTI()
    op = _op(deferrable=True, use_callback_listener=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx(ti))
    callback = _callback_url(emu)
    token = callback.rsplit("/", 1)[-1]
    assert callback.startswith("http://127.0.0.1:8799/cb/") and len(token) >= 16
    # Job calls go through the hook's own request path now, so the SDK logs no CreateJob body; a record of the
    # SDK loggers carrying the URL (as the SDK logs bodies at INFO) shows the redaction at the source.
    logging.getLogger("qcloud_cos.cos_client").info("<CallBack>%s</CallBack>", callback)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "<CallBack>" in logged  # the record was logged ...
    assert token not in logged  # ... with the token redacted
    assert token not in json.dumps(ti.xcoms, default=str)
    # The trigger kwargs hold the nonce, never the token (with a key, the token needs the MAC).
    assert token not in json.dumps(deferred.value.trigger.serialize()[1], default=str)
    try:  # Airflow >= 3.2
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    assert token not in str(redact(f"CallBack={callback}"))  # Airflow's masker (task logs) knows the token
