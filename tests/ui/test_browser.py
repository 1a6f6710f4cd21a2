"""The provider as a user meets it in Airflow's UI, in a real Chromium against a real API server.

Screenshots of every step land in test-artifacts/ui/ (gitignored).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tencent_ci.constants import SEGMENTATION_PARTS
from airflow_provider_tencent_ci.get_provider_info import CONN_FIELDS
from tests.dags._support import EXAMPLE_DAGS
from tests.operators.image_support import open_image, subject_png
from tests.services.airflow_services import AIRFLOW, AirflowServices
from tests.ui.browser import browser_missing, chromium, screenshot, start_ui_services
from tests.ui.dags import tencent_ci_ui_extra_link as link_dag


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


pytestmark = [
    pytest.mark.ui,
    pytest.mark.services,
    pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing())),
]

# The browser tests drive the Airflow >= 3.2 UI. Airflow 3.1's UI builds the connection form from the hook class
# (TencentCloudBaseHook's legacy methods, checked in tests/test_provider_registration.py) and its pages differ; the
# non-browser tests of this module (hook_meta, `airflow connections test`) run on 3.1 too.
BROWSER_NEEDS_3_2 = pytest.mark.skipif(
    _airflow_version() < (3, 2),
    reason="these browser steps drive the Airflow >= 3.2 UI; 3.1's pages differ (its connection form facts are "
    "tested in tests/test_provider_registration.py)",
)

CONN_ID = "tencent_from_the_form"
WAIT = 60.0


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last!r}")


@pytest.fixture(scope="module")
def ui_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServices]:
    root = tmp_path_factory.mktemp("ui")
    dags = root / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLE_DAGS / "tencent_ci_portrait_studio.py", dags)
    shutil.copy(Path(link_dag.__file__), dags)  # parsed while the form tests run
    services = AirflowServices(root / "airflow-home", dags, {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    try:
        start_ui_services(services)
        yield services
    finally:
        services.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def _text(driver: Any) -> str:
    return str(driver.find_element(_by().TAG_NAME, "body").text)


def _choose(driver: Any, combobox: Any, option: str) -> None:
    """Pick an option of a react-select box by its exact text."""
    combobox.click()
    combobox.send_keys(option)
    xpath = f"//*[@role='option' and normalize-space(.)='{option}']"
    wait_until(lambda: driver.find_element(_by().XPATH, xpath), f"option {option!r}").click()


def test_hook_meta_declares_the_form(ui_services: AirflowServices) -> None:
    meta = next(m for m in ui_services._get("/ui/connections/hook_meta") if m["connection_type"] == "tencentcloud")
    assert meta["hook_name"] == "Tencent Cloud"
    assert meta["standard_fields"] is not None
    assert meta["standard_fields"]["login"]["title"] == "SecretId"
    assert set(meta["extra_fields"]) == set(CONN_FIELDS)


@BROWSER_NEEDS_3_2
def test_add_connection_form_saves_a_tencent_connection(
    ui_services: AirflowServices, browser: Any, tencent_emulator: Any
) -> None:
    by = _by()
    cred = tencent_emulator.credential(False)
    browser.set_window_size(1400, 2600)  # the whole dialog in view: Selenium reads and types only visible fields
    browser.get(ui_services.base_url + "/connections")
    add = "//button[contains(., 'Add Connection')]"
    wait_until(lambda: browser.find_element(by.XPATH, add), "Add Connection").click()
    conn_id = wait_until(lambda: browser.find_element(by.NAME, "connection_id"), "the connection id field")
    conn_id.send_keys(CONN_ID)
    _choose(browser, browser.find_element(by.CSS_SELECTOR, "input[role=combobox]"), "Tencent Cloud")

    # Standard fields: Tencent labels, nothing irrelevant.
    wait_until(lambda: browser.find_element(by.NAME, "login").is_displayed(), "the SecretId field")
    text = _text(browser)
    assert "SecretId" in text and "SecretKey" in text
    for hidden in ("host", "port", "schema"):
        assert browser.find_elements(by.NAME, hidden) == [], hidden
    browser.find_element(by.NAME, "login").send_keys(cred.secret_id)
    browser.find_element(by.NAME, "password").send_keys(cred.secret_key)
    screenshot(browser, "1-tencent-connection-standard-fields")

    # Extra fields: one per extra, with its label and description.
    browser.find_element(by.XPATH, "//button[contains(., 'Extra Fields') and not(contains(., 'JSON'))]").click()
    wait_until(lambda: browser.find_element(by.NAME, "element_region").is_displayed(), "the extra fields")
    expected = [text for spec in CONN_FIELDS.values() for text in (spec["label"], spec["description"])]

    def missing() -> list[str]:
        text = _text(browser)
        return [e for e in expected if e not in text]

    try:  # the accordion opens with an animation
        wait_until(lambda: not missing(), "every extra field's label and description", timeout=20)
    except AssertionError:
        assert missing() == []
    assert browser.find_element(by.NAME, "element_token").get_attribute("type") == "password"
    browser.find_element(by.NAME, "element_region").send_keys(tencent_emulator.region)
    browser.find_element(by.NAME, "element_appid").send_keys(str(tencent_emulator.appid))
    browser.find_element(by.NAME, "element_proxy").send_keys(tencent_emulator.url)
    browser.find_element(by.NAME, "element_max_attempts").send_keys("2")
    # "Use HTTPS" is a switch, on by default; the emulator speaks plain http.
    use_https = browser.find_element(by.NAME, "element_use_https")
    assert use_https.is_selected()
    browser.find_element(by.XPATH, "//input[@name='element_use_https']/ancestor::label[1]").click()
    wait_until(lambda: not use_https.is_selected(), "the Use HTTPS switch turned off")
    screenshot(browser, "2-tencent-connection-extra-fields")
    browser.find_element(by.XPATH, "//button[contains(., 'Save')]").click()

    def saved() -> dict[str, Any] | None:
        return ui_services._get(f"/api/v2/connections/{CONN_ID}")

    conn = wait_until(saved, "the saved connection")
    screenshot(browser, "3-tencent-connection-saved")
    assert conn["conn_type"] == "tencentcloud" and conn["login"] == cred.secret_id
    extra = json.loads(conn["extra"])
    assert extra["region"] == tencent_emulator.region and extra["appid"] == str(tencent_emulator.appid)
    assert extra["use_https"] is False and extra["max_attempts"] == 2 and "scheme" not in extra


def test_connections_test_cli_on_the_saved_connection(ui_services: AirflowServices, tencent_emulator: Any) -> None:
    """`airflow connections test` (the UI's Test button is broken in Airflow 3.3.2 for every type)."""
    if ui_services._get(f"/api/v2/connections/{CONN_ID}") is None:
        pytest.skip("the form test did not save the connection")
    out = subprocess.run(
        [AIRFLOW, "connections", "test", CONN_ID],
        env=ui_services.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Connection success!" in out.stdout
    assert tencent_emulator.credential(False).secret_key not in out.stdout + out.stderr


@BROWSER_NEEDS_3_2
def test_portrait_studio_trigger_form_has_the_parts_multi_select(ui_services: AirflowServices, browser: Any) -> None:
    by = _by()
    ui_services.wait_for_dag("tencent_ci_portrait_studio", timeout=300)
    browser.set_window_size(1400, 2200)
    browser.get(ui_services.base_url + "/dags/tencent_ci_portrait_studio")
    trigger = wait_until(lambda: browser.find_element(by.XPATH, "//button[normalize-space(.)='Trigger']"), "Trigger")
    trigger.click()
    wait_until(lambda: browser.find_element(by.XPATH, "//*[contains(., 'Run Parameters')]"), "the trigger form")
    for section in browser.find_elements(by.XPATH, "//button[contains(., 'Run Parameters')]"):
        if section.get_attribute("aria-expanded") == "false":
            section.click()
    field = "//input[@name='element_parts']/ancestor::div[.//input[@role='combobox']][1]"
    parts = wait_until(lambda: browser.find_element(by.XPATH, field + "//input[@role='combobox']"), "parts")
    parts.click()
    # react-select names its open menu in the input's aria-controls.
    menu = wait_until(lambda: browser.find_element(by.ID, parts.get_attribute("aria-controls")), "the parts menu")
    options = wait_until(lambda: menu.find_elements(by.XPATH, ".//*[@role='option']"), "the parts options")
    screenshot(browser, "4-portrait-studio-trigger-form")
    offered = [str(o.get_attribute("textContent")).strip() for o in options]  # also those scrolled out of the menu
    # The default (Head, Hair) is shown as chosen chips; the menu offers the other parts.
    assert sorted({*offered, "Head", "Hair"}) == sorted(SEGMENTATION_PARTS), offered
    assert "Head" not in offered and len(offered) == len(SEGMENTATION_PARTS) - 2, offered
    assert "Portrait parts" in _text(browser)


def test_connections_test_cli_reports_a_wrong_key(ui_services: AirflowServices, tencent_emulator: Any) -> None:
    cred = tencent_emulator.credential(False)
    wrong_key = "not-the-emulator-secret-key-0000"
    ui_services._request(
        "POST",
        "/api/v2/connections",
        {
            "connection_id": "tencent_wrong_key",
            "conn_type": "tencentcloud",
            "login": cred.secret_id,
            "password": wrong_key,
            "extra": json.dumps({**tencent_emulator.connection_extras(), "max_attempts": 1}),
        },
    )
    out = subprocess.run(
        [AIRFLOW, "connections", "test", "tencent_wrong_key"],
        env=ui_services.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # Airflow >= 3.2 exits 1 after "Connection failed!"; 3.1's `connections test` exits 0 (cli connection_command).
    assert out.returncode == (1 if _airflow_version() >= (3, 2) else 0), out.stdout[-3000:]
    assert "Connection failed!" in out.stdout
    assert "request_id=" in out.stdout, out.stdout[-2000:]
    assert wrong_key not in out.stdout + out.stderr


@BROWSER_NEEDS_3_2
def test_task_extra_link_opens_the_output_in_the_emulator_view(
    ui_services: AirflowServices, browser: Any, tencent_emulator: Any
) -> None:
    """Run a matting task on the real scheduler, then click its "COS Output" link on the task instance page."""
    by, emu = _by(), tencent_emulator
    emu.put_object(link_dag.BUCKET, link_dag.SOURCE_KEY, subject_png(), content_type="image/png")
    cred = emu.credential(False)
    ui_services._request(
        "POST",
        "/api/v2/connections",
        {
            "connection_id": link_dag.CONN_ID,
            "conn_type": "tencentcloud",
            "login": cred.secret_id,
            "password": cred.secret_key,
            "extra": json.dumps(emu.connection_extras()),  # carries console_base_url: the emulator's object view
        },
    )
    ui_services.start_component("scheduler")  # the UI fixture runs none; LocalExecutor runs the task under it
    ui_services.wait_for_dag(link_dag.DAG_ID, timeout=300)
    run_id = ui_services.trigger_dag(link_dag.DAG_ID)
    assert ui_services.wait_for_run(link_dag.DAG_ID, run_id, timeout=300) == "success"
    output = emu.get_object(link_dag.BUCKET, link_dag.OUTPUT_KEY)
    assert output is not None and output.content_type == "image/png"

    browser.set_window_size(1400, 1400)
    run = urllib.parse.quote(run_id, safe="")
    browser.get(f"{ui_services.base_url}/dags/{link_dag.DAG_ID}/runs/{run}/tasks/matting")
    # The task instance page opens on its logs; its Details tab lists the extra links as anchors (target=_blank)
    # under "Extra Links".
    details = "//a[contains(@href, '/tasks/matting/details')]"
    wait_until(lambda: browser.find_element(by.XPATH, details), "the Details tab").click()
    try:
        link = wait_until(lambda: browser.find_element(by.XPATH, "//a[normalize-space(.)='COS Output']"), "the link")
    finally:
        screenshot(browser, "5-task-instance-extra-link")
    expected = f"{emu.console_base_url}/objects/{link_dag.BUCKET}/{link_dag.OUTPUT_KEY}"
    assert link.get_attribute("href") == expected
    assert link.get_attribute("target") == "_blank"

    before = set(browser.window_handles)
    link.click()
    opened = wait_until(lambda: set(browser.window_handles) - before, "the link's new tab")
    main = browser.current_window_handle
    browser.switch_to.window(opened.pop())
    try:
        assert wait_until(lambda: browser.current_url == expected, "the object view URL")
        # The view serves the object itself with its content type: Chromium shows it as an image document.
        assert wait_until(lambda: browser.execute_script("return document.contentType"), "the document") == "image/png"
        width = wait_until(
            lambda: browser.execute_script("const i = document.images[0]; return i && i.complete && i.naturalWidth"),
            "the image to load",
        )
        assert width == open_image(bytes(output.data)).size[0]
        screenshot(browser, "6-emulator-object-view")
    finally:
        browser.close()
        browser.switch_to.window(main)
