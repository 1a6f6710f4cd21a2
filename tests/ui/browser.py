"""Real Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium, and an Airflow API server for it.

The flags keep Chromium off the network: on a closed machine its background services (sync, component updates,
QUIC probes) otherwise fail or stall.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.services.airflow_services import AIRFLOW, AirflowServices

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def chromium_binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when the Debian packages are not installed."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def browser_missing() -> str | None:
    """Why no browser test can run here, or None."""
    import importlib.util

    if chromium_binaries() is None:
        return "Debian's chromium and chromium-driver are not installed (`make system-deps` installs them)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (it is in the dev extra: pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binaries = chromium_binaries()
    assert binaries is not None, browser_missing()
    profile = tempfile.mkdtemp(prefix="tencent-ci-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binaries[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=binaries[1]), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def start_ui_services(services: AirflowServices) -> None:
    """Only what the UI pages need: the API server (it serves the UI) and the DAG processor (trigger forms)."""
    services.home.mkdir(parents=True, exist_ok=True)
    subprocess.run([AIRFLOW, "db", "migrate"], env=services.env, check=True, capture_output=True, timeout=600)
    for component in ("api-server", "dag-processor"):
        services.start_component(component)
    services.wait_for(lambda: services._get("/api/v2/version") is not None, 300, "the API server")
