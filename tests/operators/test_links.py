"""Extra links: into the emulator's object view when the connection has ``console_base_url`` (what the emulator's
``connection_extras()`` sets), to the Tencent console otherwise. Real tasks through ``dag.test()``; the link XCom is
the URL Airflow rendered at the end of the task, fetched back over real HTTP."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_tencent_ci.exceptions import ParameterValidationError
from airflow_provider_tencent_ci.hooks.ci import CIHook
from airflow_provider_tencent_ci.links.cos import CIJobLink, COSObjectLink
from airflow_provider_tencent_ci.operators.ci_image import PortraitMattingOperator
from tests.conftest import run_dag
from tests.operators.image_support import BUCKET, START, open_image, state, subject_png, xcom

OUTPUT = "out/2024-01-01/person.png"


def _matting_run(emu: Any, dag_id: str) -> Any:
    emu.put_object(BUCKET, "in/person.png", subject_png(), content_type="image/png")
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        PortraitMattingOperator(
            task_id="process", bucket=BUCKET, source_key="in/person.png", output_key="out/{{ ds }}/{stem}.png"
        )
    dr = run_dag(dag, logical_date=START)
    assert state(dr, "process") == "success"
    return dr


def test_image_link_opens_the_output_in_the_emulator_view(tencent_conn: Any) -> None:
    emu = tencent_conn
    dr = _matting_run(emu, "link_emulator_view")
    link = xcom(dr, "process", key="_link_COSObjectLink")
    assert link == f"{emu.console_base_url}/objects/{BUCKET}/{OUTPUT}"
    with urllib.request.urlopen(link, timeout=10) as resp:  # the token is in the URL: no other auth
        body, content_type = resp.read(), resp.headers.get("Content-Type")
    output = emu.get_object(BUCKET, OUTPUT)
    assert body == output.data and content_type == "image/png"
    assert open_image(body).format == "PNG"


def test_without_the_extra_the_link_is_the_tencent_console(tencent_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = tencent_conn
    extras = {k: v for k, v in emu.connection_extras().items() if k != "console_base_url"}
    cred = emu.credential()
    value = {"conn_type": "tencentcloud", "login": cred.secret_id, "password": cred.secret_key, "extra": extras}
    monkeypatch.setenv("AIRFLOW_CONN_TENCENTCLOUD_DEFAULT", json.dumps(value))
    dr = _matting_run(emu, "link_console")
    link = xcom(dr, "process", key="_link_COSObjectLink")
    assert link.startswith(f"https://console.cloud.tencent.com/cos/bucket?bucket={BUCKET}")
    assert "path=%2Fout%2F2024-01-01%2F" in link
    assert emu.control_token not in link


def test_view_url_formats() -> None:
    view = "http://127.0.0.1:9/_emulator/view/tok"
    assert COSObjectLink.format_url(bucket=BUCKET, key="a b/c.png", console_base_url=view) == (
        f"{view}/objects/{BUCKET}/a%20b/c.png"
    )
    # A batch's link names the outputs' shared folder: the view's listing of that prefix.
    assert COSObjectLink.format_url(bucket=BUCKET, key="x/y/", console_base_url=view) == (
        f"{view}/objects/{BUCKET}/?prefix=x%2Fy%2F"
    )
    assert COSObjectLink.format_url(bucket=BUCKET, key="", console_base_url=view) == f"{view}/objects/{BUCKET}/"
    assert CIJobLink.format_url(bucket=BUCKET, job_id="a1b2", region="ap-guangzhou", console_base_url=view) == (
        f"{view}/jobs/{BUCKET}/a1b2"
    )
    # Fields persisted before the extra existed (or without it) still give the console URL.
    assert CIJobLink.format_url(bucket=BUCKET, job_id="a1b2").startswith("https://console.cloud.tencent.com/ci/")


def test_console_base_url_is_a_masked_secret(tencent_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    hook = CIHook()
    view = hook.config.console_base_url
    assert view == tencent_conn.console_base_url
    assert view not in repr(hook.config)
    # Registered with the redaction of the SDK loggers (and Airflow's masker): a logged link shows no token.
    logging.getLogger("qcloud_cos.cos_client").warning("GET %s/objects/x", view)
    assert "GET ***/objects/x" in caplog.text and tencent_conn.control_token not in caplog.text


def test_console_base_url_must_be_http(tencent_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    extras = {**tencent_conn.connection_extras(), "console_base_url": "javascript:alert(1)//secret-token"}
    cred = tencent_conn.credential()
    value = {"conn_type": "tencentcloud", "login": cred.secret_id, "password": cred.secret_key, "extra": extras}
    monkeypatch.setenv("AIRFLOW_CONN_TC_BAD_VIEW", json.dumps(value))
    with pytest.raises(ParameterValidationError, match="console_base_url") as info:
        CIHook("tc_bad_view").config  # noqa: B018
    assert "secret-token" not in str(info.value)
