"""The provider is registered with Airflow: the CLI lists it and its `tencentcloud` connection type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_tencent_ci.get_provider_info import (
    CONN_FIELDS,
    get_provider_info,
    legacy_connection_form_widgets,
    legacy_ui_field_behaviour,
)

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


_COUNT_PLUGIN_ENTRY_POINTS = """
try:
    from airflow._shared.module_loading import entry_points_with_dist  # Airflow >= 3.2
except ImportError:
    from airflow.utils.entry_points import entry_points_with_dist  # Airflow 3.1
print(sum(ep.name == "tencent_ci_callback_receiver" for ep, _ in entry_points_with_dist("airflow.plugins")))
"""


def test_the_callback_receiver_plugin_is_found_once_with_the_checkout_on_sys_path() -> None:
    """The demo and pytest put the checkout on sys.path: an editable build's leftover ``*.egg-info`` there made Airflow
    find the plugin's entry point twice and log "Plugin ... already registered, skipping" (the Makefile removes it)."""
    repo = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _COUNT_PLUGIN_ENTRY_POINTS],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo)},
        cwd=repo,
        timeout=240,
        check=True,
    )
    assert result.stdout.strip() == "1"


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


# ---- the connection form -------------------------------------------------------------------------------------
_HOOK_META = r"""
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
meta = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "tencentcloud"]
print(json.dumps([m.model_dump(mode="json") for m in meta]))
"""


def _airflow_version() -> tuple[int, int]:
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)


def _hook_meta() -> dict:
    """What `GET /ui/connections/hook_meta` answers for tencentcloud (the route's own service, fresh process)."""
    out = subprocess.run(
        [sys.executable, "-c", _HOOK_META],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
        env=dict(os.environ),
    )
    entries = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(entries) == 1, entries
    return entries[0]


def test_connection_form_labels_and_hidden_fields() -> None:
    meta = _hook_meta()
    assert meta["hook_name"] == "Tencent Cloud"
    std = meta["standard_fields"]
    assert std is not None
    assert std["login"]["title"] == "SecretId" and std["password"]["title"] == "SecretKey"
    assert std["host"]["hidden"] and std["port"]["hidden"] and std["url_schema"]["hidden"]
    assert not std["login"]["hidden"] and not std["password"]["hidden"]


@pytest.mark.skipif(
    _airflow_version() < (3, 2)
    and "get_connection_form_widgets"
    not in __import__("airflow_provider_tencent_ci.hooks.base", fromlist=["x"]).TencentCloudBaseHook.__dict__,
    reason="Airflow 3.1 takes extra fields only from Hook.get_connection_form_widgets(), which the hook does not "
    "define yet (it should return get_provider_info.legacy_connection_form_widgets())",
)
def test_connection_form_has_a_field_for_every_extra() -> None:
    fields = _hook_meta()["extra_fields"]
    assert set(fields) == set(CONN_FIELDS)
    for name, spec in CONN_FIELDS.items():
        assert fields[name]["schema"]["title"] == spec["label"], name
        assert fields[name]["description"], name
    assert fields["token"]["schema"]["format"] == "password"
    assert "boolean" in fields["use_instance_role"]["schema"]["type"]
    assert "scheme" not in fields and "boolean" in fields["use_https"]["schema"]["type"]
    assert "integer" in fields["max_attempts"]["schema"]["type"]


def test_every_form_field_is_an_extra_the_hook_reads() -> None:
    """A form field the hook ignored would be a setting that silently does nothing."""
    from airflow_provider_tencent_ci.hooks.credentials import ConnectionConfig

    config_fields = set(ConnectionConfig.__dataclass_fields__) | {"use_https"}  # a property over `scheme`
    assert set(CONN_FIELDS) <= config_fields, set(CONN_FIELDS) - config_fields
    assert isinstance(ConnectionConfig.use_https, property)


def test_values_the_form_produces_are_accepted_by_the_hook() -> None:
    """The extras JSON the form writes (every field, empty ones as null) parses into the intended config."""
    from airflow.sdk import Connection

    from airflow_provider_tencent_ci.hooks.credentials import ConnectionConfig

    extra = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}
    extra.update(region="ap-shanghai", appid="1250000000", timeout=12.5, max_attempts=2, use_https=False)
    conn = Connection(conn_id="form", conn_type="tencentcloud", login="AKIDx", password="k", extra=json.dumps(extra))
    cfg = ConnectionConfig.from_connection(conn)
    assert (cfg.region, cfg.appid, cfg.timeout, cfg.max_attempts, cfg.scheme) == (
        "ap-shanghai",
        "1250000000",
        12.5,
        2,
        "http",
    )
    assert cfg.use_instance_role is False and cfg.token is None and cfg.role_arn is None and not cfg.use_https


def test_legacy_field_behaviour_matches_airflows_schema() -> None:
    """Airflow 3.1's path (Hook.get_ui_field_behaviour) accepts the same declaration."""
    import jsonschema
    from airflow.providers_manager import _create_customized_form_field_behaviours_schema_validator

    behaviour = legacy_ui_field_behaviour()
    _create_customized_form_field_behaviours_schema_validator().validate(behaviour)
    assert behaviour["relabeling"] == {"login": "SecretId", "password": "SecretKey"}
    with pytest.raises(jsonschema.ValidationError):
        _create_customized_form_field_behaviours_schema_validator().validate({**behaviour, "hidden_fields": "host"})


def test_legacy_widgets_render_the_same_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1's API server turns Hook.get_connection_form_widgets() into the same form fields.

    The API server substitutes its WTForms stand-ins when FAB/WTForms are not installed; this does the same with
    Airflow's own stand-in classes and converts the result with the route's converter.
    """
    import importlib.util
    import types

    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService as Meta

    if importlib.util.find_spec("wtforms") is not None:
        pytest.skip("WTForms is installed here; the stand-ins are only used without it")
    stand_ins = {
        "wtforms": {
            "StringField": Meta.MockStringField,
            "IntegerField": Meta.MockIntegerField,
            "PasswordField": Meta.MockPasswordField,
            "BooleanField": Meta.MockBooleanField,
        },
        "wtforms.validators": {"Optional": Meta.MockOptional, "any_of": Meta.MockEnum},
        "flask_babel": {"lazy_gettext": str},
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {
            "BS3TextFieldWidget": Meta.MockAnyWidget,
            "BS3PasswordFieldWidget": Meta.MockAnyWidget,
        },
    }
    for name, attrs in stand_ins.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))

    widgets = legacy_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    params = {name: widget.param.dump() for name, widget in widgets.items()}
    for name, spec in CONN_FIELDS.items():
        assert params[name]["schema"]["title"] == spec["label"], name
        assert params[name]["description"] == spec["description"], name
    assert params["token"]["schema"]["format"] == "password"
    assert params["use_https"]["schema"]["type"][0] == "boolean"
    assert params["use_instance_role"]["schema"]["type"][0] == "boolean"
    assert params["max_attempts"]["schema"]["type"][0] == "integer"


# ---- assets and packaging ------------------------------------------------------------------------------------
def test_tencentci_asset_uris_are_validated_and_normalised() -> None:
    from airflow.sdk import Asset

    from airflow_provider_tencent_ci.assets import create_asset

    asset = Asset("tencentci://examplebucket-1250000000/jobs/SegmentVideoBody/")
    assert asset.uri == "tencentci://examplebucket-1250000000/jobs/SegmentVideoBody"
    assert create_asset("examplebucket-1250000000", "/jobs/SegmentVideoBody").uri == asset.uri
    with pytest.raises(ValueError, match=r"<name>-<APPID>"):
        Asset("tencentci://ExampleBucket/jobs/SegmentVideoBody")
    with pytest.raises(ValueError, match="a path in the bucket is required"):
        Asset("tencentci://examplebucket-1250000000")


def test_asset_uri_scheme_is_registered() -> None:
    try:  # Airflow >= 3.2: the task SDK's registry
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:
        from airflow.providers_manager import ProvidersManager as Manager  # type: ignore[no-redef,assignment]

    from airflow_provider_tencent_ci.assets import create_asset, sanitize_uri

    manager = Manager()
    assert manager.asset_uri_handlers["tencentci"] is sanitize_uri
    assert manager.asset_factories["tencentci"] is create_asset


def test_provider_info_passes_airflows_schema() -> None:
    from airflow.providers_manager import _create_provider_info_schema_validator

    _create_provider_info_schema_validator().validate(get_provider_info())


def test_pyproject_declares_license_extras_and_direct_imports() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    # The wheel's py.typed (checked with `pip wheel`: dist-info/licenses/LICENSE and the package's py.typed).
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["airflow_provider_tencent_ci"]
    assert (Path(__file__).parents[1] / "airflow_provider_tencent_ci" / "py.typed").is_file()
    assert "Apache License" in (Path(__file__).parents[1] / "LICENSE").read_text()[:200]
    deps = " ".join(project["dependencies"])
    for module in ("requests", "asgiref", "httpx", "defusedxml", "Pillow", "pendulum"):
        assert module in deps, module
    extras = project["optional-dependencies"]
    assert any(d.startswith("uvicorn") for d in extras["emulator"])
    assert extras["redis"] == ["redis>=5"]
    assert "pytest11" not in project.get("entry-points", {}), "the emulator pytest plugin is opt-in"
    assert "Framework :: Apache Airflow :: Provider" in project["classifiers"]
