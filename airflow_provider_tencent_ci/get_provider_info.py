"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Also the one declaration of the ``tencentcloud`` connection form. Airflow >= 3.2 builds the form from
``conn-fields`` / ``ui-field-behaviour`` below without importing the hook (``providers_manager._load_ui_metadata``);
Airflow 3.1 asks the hook class (``get_ui_field_behaviour`` / ``get_connection_form_widgets``), which derive
their answers from the same declaration through :func:`legacy_ui_field_behaviour` and
:func:`legacy_connection_form_widgets`. Field names are the connection extras ``ConnectionConfig`` reads.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_tencent_ci import __version__
from airflow_provider_tencent_ci.assets import SCHEME as ASSET_SCHEME
from airflow_provider_tencent_ci.constants import CONN_TYPE

_CI = "Tencent Cloud Infinite (CI)"
_BDA = "Tencent Cloud Body Analysis (BDA)"
_PKG = "airflow_provider_tencent_ci"

HOOK_NAME = "Tencent Cloud"


def _text(label: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


def _number(label: str, description: str, kind: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


# The extras of a `tencentcloud` connection as form fields (JSON-schema per field: Airflow's `conn-fields` format).
# Limits restate hooks/credentials.py's checks so the form rejects what the hook would reject.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "region": _text(
        "Region",
        "COS/CI/BDA region, e.g. ap-guangzhou (BDA: ap-beijing, ap-guangzhou or ap-shanghai). "
        "Operators may override it.",
    ),
    "appid": _text("APPID", "Numeric account APPID (bucket names end with it), e.g. 1250000000.", pattern="^[0-9]+$"),
    "token": _text(
        "STS session token",
        "Only with temporary SecretId/SecretKey from STS. Stored encrypted and masked in logs.",
        format="password",
    ),
    "role_arn": _text(
        "Role ARN",
        "Assume this CAM role through STS AssumeRole with the keys above, e.g. qcs::cam::uin/100000000001:roleName/x.",
    ),
    "role_session_name": _text("Role session name", "RoleSessionName for AssumeRole (empty: airflow)."),
    "duration_seconds": _number(
        "Role session duration (s)",
        "DurationSeconds for AssumeRole, 900..43200 (empty: 7200).",
        "integer",
        minimum=900,
        maximum=43200,
    ),
    "use_instance_role": {
        "label": "Use the CVM instance role",
        "description": "With no SecretId here or in TENCENTCLOUD_SECRET_ID, take temporary keys from the CVM "
        "instance role (metadata service).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    # A boolean, not a `scheme` string (why: hooks/credentials.py `_scheme`, which still reads `scheme` too).
    "use_https": {
        "label": "Use HTTPS",
        "description": "Send every request over https. Turn off only for a local emulator (plain http).",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "proxy": _text("Proxy", "HTTP(S) proxy URL for every request, e.g. http://proxy.example.com:3128."),
    "cos_endpoint": _text("COS endpoint", "Instead of cos.<region>.myqcloud.com, e.g. a private or emulator host."),
    "ci_endpoint": _text("CI endpoint", "Instead of ci.<region>.myqcloud.com (CI job APIs)."),
    "bda_endpoint": _text("BDA endpoint", "Instead of bda.tencentcloudapi.com (portrait segmentation)."),
    "sts_endpoint": _text("STS endpoint", "Instead of sts.tencentcloudapi.com (role assumption, connection test)."),
    "timeout": _number(
        "Timeout (s)", "Per-request timeout in seconds, 0.1..3600 (empty: 30).", "number", minimum=0.1, maximum=3600
    ),
    "max_attempts": _number(
        "Max attempts",
        "Attempts per call on throttling, 5xx and network errors, 1..20 (empty: 4; 1 disables retries).",
        "integer",
        minimum=1,
        maximum=20,
    ),
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "port", "schema"],
    "relabeling": {"login": "SecretId", "password": "SecretKey"},
    # Only the standard fields' placeholders reach the form (the API's StandardHookFields); extras use descriptions.
    "placeholders": {
        "login": "AKID... (empty: TENCENTCLOUD_SECRET_ID, or the instance role)",
        "password": "SecretKey of that SecretId",
    },
}


def legacy_ui_field_behaviour() -> dict[str, Any]:
    """:data:`UI_FIELD_BEHAVIOUR` as Airflow < 3.2 takes it from ``Hook.get_ui_field_behaviour()``."""
    return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}


def legacy_connection_form_widgets() -> dict[str, Any]:
    """:data:`CONN_FIELDS` as WTForms fields, for ``Hook.get_connection_form_widgets()`` on Airflow < 3.2.

    Imported lazily: Airflow 3.1's API server substitutes its own stand-ins when FAB/WTForms are not installed.
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import Optional, any_of

    widgets: dict[str, Any] = {}
    for name, spec in CONN_FIELDS.items():
        schema = spec["schema"]
        kind = schema["type"][0]
        label = lazy_gettext(spec["label"])
        common: dict[str, Any] = {"description": spec["description"], "default": schema.get("default")}
        if kind == "boolean":
            widgets[name] = BooleanField(label, **common)
            continue
        validators = [Optional()] + ([any_of(schema["enum"])] if "enum" in schema else [])
        if schema.get("format") == "password":
            widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), validators=validators, **common)
        elif kind == "integer":
            widgets[name] = IntegerField(label, widget=BS3TextFieldWidget(), validators=validators, **common)
        else:  # strings, and numbers (WTForms' FloatField is not among the field classes Airflow accepts)
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), validators=validators, **common)
    return widgets


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-tencent-ci",
        "name": "Tencent Cloud Infinite",
        "description": "Tencent Cloud Infinite (CI) image AI, SegmentVideoBody jobs and BDA portrait segmentation.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _CI,
                "external-doc-url": "https://www.tencentcloud.com/products/ci",
                "tags": ["service"],
            },
            {
                "integration-name": _BDA,
                "external-doc-url": "https://www.tencentcloud.com/products/bda",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": _CI, "python-modules": [f"{_PKG}.hooks.base", f"{_PKG}.hooks.ci"]},
            {"integration-name": _BDA, "python-modules": [f"{_PKG}.hooks.bda"]},
        ],
        "operators": [
            {
                "integration-name": _CI,
                "python-modules": [f"{_PKG}.operators.ci_image", f"{_PKG}.operators.segment_video_body"],
            },
            {"integration-name": _BDA, "python-modules": [f"{_PKG}.operators.bda"]},
        ],
        "sensors": [{"integration-name": _CI, "python-modules": [f"{_PKG}.sensors.ci_job"]}],
        "triggers": [{"integration-name": _CI, "python-modules": [f"{_PKG}.triggers.ci_job"]}],
        "connection-types": [
            {
                "hook-class-name": f"{_PKG}.hooks.base.TencentCloudBaseHook",
                "connection-type": CONN_TYPE,
                "hook-name": HOOK_NAME,
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "asset-uris": [
            {
                "schemes": [ASSET_SCHEME],
                "handler": f"{_PKG}.assets.sanitize_uri",
                "factory": f"{_PKG}.assets.create_asset",
            }
        ],
        "extra-links": [f"{_PKG}.links.cos.COSObjectLink", f"{_PKG}.links.cos.CIJobLink"],
        "config": {
            "tencent_ci": {
                "description": "Tencent Cloud Infinite provider: the CI callback listener run inside the triggerer.",
                "options": {
                    "callback_listener_host": {
                        "description": "Address the triggerer's callback listener binds to.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "0.0.0.0",
                        "default": "127.0.0.1",
                    },
                    "callback_listener_port": {
                        "description": "Port of the callback listener (0 picks a free port; only useful in tests).",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "8799",
                        "default": "8799",
                    },
                    "callback_token_key": {
                        "description": "Key for the HMAC that turns a trigger's random nonce into the callback URL "
                        "token, so serialized trigger kwargs never hold a usable token. Empty: [core] fernet_key.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "sensitive": True,
                        "example": None,
                        "default": "",
                    },
                    "job_query_batch_size": {
                        "description": "Most job ids per coalesced GET /jobs/<id1,...> query (CI documents no limit).",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": "10",
                        "default": "10",
                    },
                    "callback_base_url": {
                        "description": "Public base URL CI should POST callbacks to (a load balancer or ingress in "
                        "front of the triggerers). Empty: http://<listener host>:<listener port>.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://airflow-callbacks.example.com/tencent-ci",
                        "default": "",
                    },
                    "callback_relay_conn_id": {
                        "description": "Airflow `redis` connection of the shared callback relay (receivers publish "
                        "callbacks there, every triggerer subscribes once). Needs the [redis] extra. Empty: "
                        "callback_relay_url, else no relay (callbacks stay in the process that received them).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "redis_default",
                        "default": "",
                    },
                    "callback_relay_url": {
                        "description": "redis:// or rediss:// URL of the callback relay, when no "
                        "callback_relay_conn_id is set.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "sensitive": True,
                        "example": "redis://redis:6379/0",
                        "default": "",
                    },
                },
            }
        },
    }
