"""Secrets (SecretKey, STS token) never reach logs or exception text, even with the SDKs logging at DEBUG.

A real task runs through ``dag.test()`` using the hooks (COS, CI jobs sync and async, BDA) with an STS credential
and then a call refused for a wrong key; the task log (file and captured output) and caplog are searched.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_tencent_ci.exceptions import TencentCloudAuthError

from .conftest import BUCKET, FAST_RETRY, set_conn

WRONG_KEY = "wrong-secret-key-that-must-never-be-logged"


def test_secrets_never_logged_in_a_real_task(
    emu: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    png_bytes: bytes,
) -> None:
    from airflow.sdk import DAG, task

    from tests.conftest import run_dag

    sts = emu.credential(sts=True)
    extras = {**emu.connection_extras(), **FAST_RETRY}
    good = set_conn(monkeypatch, "tc_secret_sts", sts.secret_id, sts.secret_key, {**extras, "token": sts.token})
    bad = set_conn(monkeypatch, "tc_secret_bad", sts.secret_id, WRONG_KEY, {**extras, "token": sts.token})
    emu.put_object(BUCKET, "s/a.txt", b"secret-test")
    image = base64.b64encode(png_bytes).decode()
    # The SDKs log request headers (x-cos-security-token included) and signing material at DEBUG.
    for name in ("qcloud_cos", "tencentcloud_sdk_common", "airflow_provider_tencent_ci", "airflow.task"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    caplog.set_level(logging.DEBUG)

    with DAG("hooks_secret_masking", schedule=None, start_date=pendulum.datetime(2024, 1, 1)) as dag:

        @task
        def use_hooks() -> None:
            from airflow_provider_tencent_ci.hooks.bda import BDAHook
            from airflow_provider_tencent_ci.hooks.ci import CIHook

            hook = CIHook(good)
            data = hook.get_object_bytes(BUCKET, "s/a.txt")
            print(f"read {len(data)} bytes; credentials {hook.get_credentials()!r}")
            hook.get_jobs(BUCKET, ["missing-job"])

            async def poll() -> None:
                h = CIHook(good)
                try:
                    await h.aget_jobs(BUCKET, ["missing-job"])
                finally:
                    await h.aclose()

            asyncio.run(poll())
            BDAHook(good).segment_customized_portrait_pic(["Hair"], image_base64=image)
            logging.getLogger("airflow.task").info("debug dump of the config: %r", hook.config)
            try:
                CIHook(bad).get_object_bytes(BUCKET, "s/a.txt")
            except TencentCloudAuthError as exc:
                logging.getLogger("airflow.task").error("refused as expected: %s", exc)
                raise

        use_hooks()

    dr = run_dag(dag)
    assert dr.state == "failed"  # the refused call failed the task
    assert emu.stats.count(operation="GetObject", ok=True) == 1
    assert emu.stats.count(operation="GetObject", ok=False) == 1
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic", ok=True) == 1

    out, err = capfd.readouterr()
    texts = {"captured output": out + err, "caplog": caplog.text}
    from airflow.configuration import conf

    log_dir = Path(conf.get("logging", "base_log_folder"))
    files = [p for p in log_dir.rglob("*") if p.is_file() and "hooks_secret_masking" in str(p)]
    for path in files:
        texts[str(path)] = path.read_text(errors="replace")
    combined = "\n".join(texts.values())
    assert "refused" in combined and "SignatureDoesNotMatch" in combined, "the failing call must be in the log"
    assert "read 11 bytes" in combined
    for name, text in texts.items():
        for secret in (sts.secret_key, sts.token, WRONG_KEY):
            assert secret not in text, f"{secret[:6]}... leaked into {name}"


def test_exception_text_never_contains_secrets(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    sts = emu.credential(sts=True)
    extras = {**emu.connection_extras(), **FAST_RETRY, "token": sts.token}
    conn = set_conn(monkeypatch, "tc_exc", sts.secret_id, WRONG_KEY, extras)
    errors: list[BaseException] = []
    for call in (
        lambda h: h.get_object_bytes(BUCKET, "x"),
        lambda h: h.get_jobs(BUCKET, ["j"]),
        lambda h: h.test_connection(),
    ):
        try:
            result = call(CIHook(conn))
            errors.append(Exception(str(result)))
        except Exception as exc:
            errors.append(exc)
    for exc in errors:
        for secret in (WRONG_KEY, sts.token):
            assert secret not in str(exc) and secret not in repr(exc)
