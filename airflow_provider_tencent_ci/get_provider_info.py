"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_tencent_ci import __version__

_CI = "Tencent Cloud Infinite (CI)"
_BDA = "Tencent Cloud Body Analysis (BDA)"
_PKG = "airflow_provider_tencent_ci"


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
                "connection-type": "tencentcloud",
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
