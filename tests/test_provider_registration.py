"""The provider is registered with Airflow: the CLI lists it and its `tencentcloud` connection type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_tencent_ci.get_provider_info import get_provider_info

AIRFLOW = Path(sys.executable).with_name("airflow")


def _airflow(*args: str) -> str:
    env = dict(os.environ)
    result = subprocess.run(
        [str(AIRFLOW), *args, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=True,
    )
    return result.stdout


def test_providers_list_shows_the_provider() -> None:
    providers = json.loads(_airflow("providers", "list"))
    names = {p["package_name"] for p in providers}
    assert "airflow-provider-tencent-ci" in names


def test_providers_hooks_shows_the_connection_type() -> None:
    hooks = json.loads(_airflow("providers", "hooks"))
    by_type = {h["connection_type"]: h for h in hooks}
    assert "tencentcloud" in by_type
    assert by_type["tencentcloud"]["class"] == "airflow_provider_tencent_ci.hooks.base.TencentCloudBaseHook"
    assert by_type["tencentcloud"]["package_name"] == "airflow-provider-tencent-ci"
    assert by_type["tencentcloud"]["hook_name"] == "Tencent Cloud"


def test_every_registered_module_and_class_imports() -> None:
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for dotted in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
