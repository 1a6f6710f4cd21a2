"""A successful run's log reads cleanly (issue 15 item 4, hooks part; issue 14 item 5).

- The expected 404 of "does the output exist yet" (``head_object``) is not a WARNING (the COS SDK logs it).
- cos-python-sdk-v5's loggers (``qcloud_cos.*``: full URLs, headers) are at WARNING unless the user set a level.
- Only secrets are registered with Airflow's secret masker. Airflow's own connection lookup hands every string
  extra to it, and one under 5 characters (``scheme: "http"``) makes every log warn "Skipping masking for a secret
  as it's too short": our connections say ``use_https: false`` instead, and a real task's log shows no warning.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import uuid
from typing import Any

import pytest

from airflow_provider_tencent_ci.hooks.ci import CIHook

from .conftest import BUCKET, set_conn
from .test_ci_hook import SVB_REQUEST

try:
    from airflow.sdk.log import redact  # type: ignore[attr-defined]
except ImportError:  # Airflow 3.1
    from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]

SecretsMasker = importlib.import_module(redact.__module__).SecretsMasker


@pytest.fixture
def sdk_logger_unset(monkeypatch: pytest.MonkeyPatch) -> logging.Logger:
    """qcloud_cos as a fresh process has it: no level of its own (restored after the test)."""
    logger = logging.getLogger("qcloud_cos")
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    return logger


def _sdk_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.split(".")[0] == "qcloud_cos"]


def test_expected_head_404_is_not_a_warning(
    emu: Any, sdk_logger_unset: logging.Logger, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    capfd.readouterr()
    hook = CIHook()
    assert hook.head_object(BUCKET, "out/not-yet.png") is None
    assert not hook.object_exists(BUCKET, "out/not-yet.png")
    assert emu.stats.count(operation="HeadObject", ok=False) == 2  # the 404s really happened
    # Airflow's own connection lookup may warn once per process about a short extra (see the masker test below).
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "secrets_masker" not in r.name]
    assert warnings == [], [r.getMessage() for r in warnings]
    out, err = capfd.readouterr()  # what Airflow's structlog handlers printed (the hook's own logger)
    assert "NoSuchResource" not in out + err and "retrying" not in out + err


def test_a_real_error_is_still_logged_by_the_sdk(emu: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The HEAD-404 filter is narrow: other refusals still reach the log."""
    caplog.set_level(logging.INFO)
    from airflow_provider_tencent_ci.exceptions import TencentCloudNotFoundError

    with pytest.raises(TencentCloudNotFoundError):
        CIHook().get_object_bytes(BUCKET, "missing.txt")
    assert any("NoSuchKey" in r.getMessage() for r in _sdk_records(caplog) if r.levelno >= logging.ERROR)


def test_sdk_info_chatter_is_quiet_by_default(
    emu: Any, sdk_logger_unset: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hook = CIHook()
    hook.put_object(BUCKET, "docs/a.txt", b"hello")
    assert hook.get_object_bytes(BUCKET, "docs/a.txt") == b"hello"
    emu.put_object(BUCKET, "in/video.mp4", b"\x00" * 64)
    emu.set_job_timing(30, 30)  # no callback is delivered during the test
    token = f"cb-token-{uuid.uuid4().hex}"  # a callback URL token is a bearer secret (issue 14 item 5)
    job = hook.submit_job(BUCKET, {**SVB_REQUEST, "CallBack": f"http://127.0.0.1:9/{token}"})
    assert sdk_logger_unset.level == logging.WARNING
    assert _sdk_records(caplog) == []
    assert token not in caplog.text and job["JobId"] not in caplog.text and "examplebucket" not in caplog.text


def test_a_level_the_user_set_is_kept(
    emu: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("qcloud_cos")
    monkeypatch.setattr(logger, "level", logging.INFO)
    caplog.set_level(logging.INFO)
    CIHook().put_object(BUCKET, "docs/a.txt", b"hello")
    assert logger.level == logging.INFO
    assert any(r.levelno == logging.INFO for r in _sdk_records(caplog))  # the user asked for INFO and gets it


def test_only_secrets_are_registered_with_the_masker(
    emu: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the connection registers no extra but the token. (Airflow's own connection lookup still hands the
    whole extras dict to the masker once, in ``_get_connection`` -> ``get_uri()`` -> ``extra_dejson``; that is
    outside the provider.)"""
    from airflow.sdk import Connection

    from airflow_provider_tencent_ci.hooks.credentials import ConnectionConfig

    extras = {k: v for k, v in emu.connection_extras().items() if k != "use_https"}
    extras["scheme"] = "http"  # a short, non-secret value in the extras (the older form of use_https=false)
    sync_token, async_token = (f"token-{uuid.uuid4().hex}" for _ in range(2))
    conn = Connection(
        conn_id="tc_mask",
        conn_type="tencentcloud",
        login="AKIDmask",
        password="mask-secret-key",
        extra=json.dumps({**extras, "token": sync_token}),
    )
    monkeypatch.setattr(SecretsMasker, "_has_warned_short_secret", False)
    caplog.set_level(logging.DEBUG)
    assert ConnectionConfig.from_connection(conn).scheme == "http"
    assert SecretsMasker._has_warned_short_secret is False
    assert "too short" not in caplog.text

    # Through the hooks (sync and async), the secrets are still registered.
    sync_conn = set_conn(monkeypatch, "tc_mask_sync", "AKIDmask", "mask-secret-key", {**extras, "token": sync_token})
    async_conn = set_conn(monkeypatch, "tc_mask_async", "AKIDmask", "mask-secret-key", {**extras, "token": async_token})
    assert CIHook(sync_conn).config.token == sync_token
    assert asyncio.run(CIHook(async_conn).aget_config()).token == async_token
    for token in (sync_token, async_token):
        assert token not in redact(f"the token is {token}")


# ---- a real task's log -----------------------------------------------------------------------------------------
SHORT_SECRET_WARNING = "Skipping masking for a secret as it's too short"


@pytest.mark.parametrize(
    ("scheme_extra", "warned"),
    [
        ({"scheme": "http"}, True),  # the older extra: Airflow's connection lookup registers "http" and warns
        ({}, False),  # the emulator's own connection: `use_https: false`, a boolean the masker never sees
    ],
    ids=["scheme-http-warns", "emulator-connection-is-clean"],
)
def test_a_real_tasks_log_has_no_short_secret_warning(
    emu: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scheme_extra: dict[str, Any],
    warned: bool,
) -> None:
    """A SegmentVideoBody task under ``dag.test()`` against the emulator, with its connection as the fixtures, the
    demo and the emulator CLI export it. The masker warns once per process, so its flag is reset first."""
    from datetime import timedelta

    from airflow.sdk import DAG

    from airflow_provider_tencent_ci.operators.segment_video_body import SegmentVideoBodyOperator
    from tests.conftest import run_dag
    from tests.operators.image_support import START, state

    cred = emu.credential()
    extras = {k: v for k, v in emu.connection_extras().items() if not (scheme_extra and k == "use_https")}
    conn_id = set_conn(monkeypatch, "tc_task_log", cred.secret_id, cred.secret_key, {**extras, **scheme_extra})
    emu.put_object(BUCKET, "in/video.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    emu.set_job_timing(30, 30)
    with DAG(f"task_log_{'warned' if warned else 'clean'}", schedule=None, start_date=START) as dag:
        SegmentVideoBodyOperator(
            task_id="submit",
            tencentcloud_conn_id=conn_id,
            retries=0,
            retry_delay=timedelta(0),
            bucket=BUCKET,
            input_object="in/video.mp4",
            output_object="out/video.mp4",
            wait_for_completion=False,
        )
    monkeypatch.setattr(SecretsMasker, "_has_warned_short_secret", False)
    capfd.readouterr()
    dr = run_dag(dag, logical_date=START)
    out, err = capfd.readouterr()
    # The task log goes to the console under dag.test(); records of stdlib loggers (the masker's) reach caplog.
    log = out + err + caplog.text
    assert state(dr, "submit") == "success", log[-3000:]
    assert emu.stats.count(operation="CreateJob") == 1
    assert "Submitted CI job" in log  # the task's own log is in what was captured
    assert (SHORT_SECRET_WARNING in log) is warned, log[-3000:]
    assert SecretsMasker._has_warned_short_secret is warned
    assert cred.secret_key not in log
