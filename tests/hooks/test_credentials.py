"""Connection parsing and the credential chain: connection keys, environment, STS AssumeRole, CVM instance role.

The emulator does not emulate STS or the CVM metadata service, so two loopback servers (conftest.json_server) hand
out the emulator's STS credential; the emulator then verifies it (token included) on a real signed call.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from airflow_provider_tencent_ci.exceptions import ParameterValidationError, TencentCloudAuthError
from airflow_provider_tencent_ci.get_provider_info import CONN_FIELDS, legacy_ui_field_behaviour
from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
from airflow_provider_tencent_ci.hooks.ci import CIHook
from airflow_provider_tencent_ci.hooks.credentials import ConnectionConfig

from .conftest import BUCKET, FAST_RETRY, set_conn


class _Conn:
    def __init__(self, login: str | None, password: str | None, extra: dict[str, Any]) -> None:
        self.conn_id = "c"
        self.login = login
        self.password = password
        self.extra = json.dumps(extra)


def test_hook_class_attributes_and_ui_fields() -> None:
    assert TencentCloudBaseHook.conn_name_attr == "tencentcloud_conn_id"
    assert TencentCloudBaseHook.default_conn_name == "tencentcloud_default"
    assert TencentCloudBaseHook.conn_type == "tencentcloud"
    assert TencentCloudBaseHook.hook_name == "Tencent Cloud"
    ui = TencentCloudBaseHook.get_ui_field_behaviour()
    assert set(ui["hidden_fields"]) == {"host", "port", "schema"}
    assert ui["relabeling"] == {"login": "SecretId", "password": "SecretKey"}
    # The extras are real form fields now (declared once in the provider info; Airflow < 3.2 reads them here).
    assert ui == legacy_ui_field_behaviour()
    assert {"region", "appid", "token", "max_attempts"} <= set(CONN_FIELDS)


def test_connection_config_parses_and_validates_extras() -> None:
    cfg = ConnectionConfig.from_connection(
        _Conn(
            "AKID1",
            "key",
            {
                "region": "ap-beijing",
                "appid": 1250000000,
                "max_attempts": "5",
                "timeout": 3,
                "use_instance_role": "false",
                "proxy": "http://127.0.0.1:1",
            },
        ),
        region="ap-shanghai",
    )
    assert cfg.region == "ap-shanghai" and cfg.appid == "1250000000" and cfg.max_attempts == 5
    assert cfg.proxy_map() == {"http": "http://127.0.0.1:1", "https": "http://127.0.0.1:1"}
    assert "key" not in repr(cfg)
    bad = [
        ({"scheme": "ftp"}, "scheme"),
        ({"use_https": "maybe"}, "use_https"),
        ({"use_https": False, "scheme": "https"}, "scheme"),  # two settings that disagree
        ({"max_attempts": 0}, "max_attempts"),
        ({"timeout": "soon"}, "timeout"),
        ({"duration_seconds": 60}, "duration_seconds"),
        ({"use_instance_role": "perhaps"}, "use_instance_role"),
        ({"appid": "abc"}, "appid"),
    ]
    for extra, param in bad:
        with pytest.raises(ParameterValidationError) as info:
            ConnectionConfig.from_connection(_Conn("AKID1", "key", extra))
        assert info.value.param == param
    with pytest.raises(ParameterValidationError, match="password"):
        ConnectionConfig.from_connection(_Conn("AKID1", None, {}))


@pytest.mark.parametrize(
    ("extra", "scheme"),
    [
        ({}, "https"),
        ({"use_https": False}, "http"),
        ({"use_https": "false"}, "http"),  # as a connection URI carries it
        ({"use_https": True}, "https"),
        ({"scheme": "http"}, "http"),  # the older extra still works
        ({"scheme": "HTTPS"}, "https"),
        ({"scheme": "http", "use_https": False}, "http"),
    ],
)
def test_scheme_from_use_https_or_the_scheme_extra(extra: dict[str, Any], scheme: str) -> None:
    assert ConnectionConfig.from_connection(_Conn("AKID1", "key", extra)).scheme == scheme


def test_environment_fallback(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = set_conn(monkeypatch, "tc_env", None, None, {**emu.connection_extras(), **FAST_RETRY})
    emu.put_object(BUCKET, "a.txt", b"env")
    cred = emu.credential()
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", cred.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", cred.secret_key)
    monkeypatch.delenv("TENCENTCLOUD_SESSION_TOKEN", raising=False)
    hook = CIHook(conn)
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"env"
    assert hook.get_credentials().source == "environment"

    sts = emu.credential(sts=True)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", sts.secret_id)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", sts.secret_key)
    with pytest.raises(TencentCloudAuthError):  # STS key without its token
        CIHook(conn).get_object_bytes(BUCKET, "a.txt")
    monkeypatch.setenv("TENCENTCLOUD_SESSION_TOKEN", sts.token)
    assert CIHook(conn).get_object_bytes(BUCKET, "a.txt") == b"env"


def test_connection_keys_win_over_environment(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDWRONG")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong-key-wrong-key")
    emu.put_object(BUCKET, "a.txt", b"conn")
    assert CIHook().get_object_bytes(BUCKET, "a.txt") == b"conn"


def test_no_credentials_anywhere(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    conn = set_conn(monkeypatch, "tc_none", None, None, emu.connection_extras())
    with pytest.raises(TencentCloudAuthError, match="no credentials"):
        CIHook(conn).get_object_bytes(BUCKET, "a.txt")
    assert emu.stats.count() == 0


def _metadata_handler(cred: Any, expires_in: int, role: str = "airflow-role") -> Any:
    def handle(method: str, path: str, body: bytes) -> tuple[int, Any]:
        base = "/latest/meta-data/cam/security-credentials/"
        if path == base:
            return 200, role
        if path == base + role:
            return 200, {
                "Code": "Success",
                "TmpSecretId": cred.secret_id,
                "TmpSecretKey": cred.secret_key,
                "Token": cred.token,
                "ExpiredTime": int(time.time()) + expires_in,
            }
        return 404, "not found"

    return handle


def test_instance_role_credentials_are_used_and_refreshed(
    emu: Any, monkeypatch: pytest.MonkeyPatch, json_server: Any
) -> None:
    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    sts = emu.credential(sts=True)
    long_lived = json_server(_metadata_handler(sts, expires_in=3600))
    extras = {**emu.connection_extras(), **FAST_RETRY, "use_instance_role": True}
    conn = set_conn(
        monkeypatch, "tc_cvm", None, None, {**extras, "metadata_endpoint": long_lived.url + "/latest/meta-data/"}
    )
    emu.put_object(BUCKET, "a.txt", b"cvm")
    hook = CIHook(conn)
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"cvm"
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"cvm"
    assert hook.get_credentials().source == "cvm-instance-role"
    assert len(long_lived.requests) == 2  # role name + credentials, once: still valid for an hour

    # Credentials within 5 minutes of expiry are fetched again before the next call.
    short = json_server(_metadata_handler(sts, expires_in=60))
    conn2 = set_conn(
        monkeypatch, "tc_cvm2", None, None, {**extras, "metadata_endpoint": short.url + "/latest/meta-data/"}
    )
    hook2 = CIHook(conn2)
    hook2.get_object_bytes(BUCKET, "a.txt")
    hook2.get_object_bytes(BUCKET, "a.txt")
    assert len([r for r in short.requests if r[1].endswith("/airflow-role")]) >= 2


def test_instance_role_unavailable_is_a_clear_error(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    conn = set_conn(
        monkeypatch,
        "tc_cvm_dead",
        None,
        None,
        {
            **emu.connection_extras(),
            "use_instance_role": True,
            "metadata_endpoint": "http://127.0.0.1:9/",
            "timeout": 2,
        },
    )
    with pytest.raises(TencentCloudAuthError, match="instance role"):
        CIHook(conn).get_object_bytes(BUCKET, "a.txt")
    assert emu.stats.count() == 0


def _sts_handler(cred: Any, expires_in: int, fail: bool = False) -> Any:
    def handle(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if fail:
            return 200, {
                "Response": {
                    "Error": {"Code": "AuthFailure.SignatureFailure", "Message": "bad signature"},
                    "RequestId": "sts-req-1",
                }
            }
        now = int(time.time())
        return 200, {
            "Response": {
                "Credentials": {"Token": cred.token, "TmpSecretId": cred.secret_id, "TmpSecretKey": cred.secret_key},
                "ExpiredTime": now + expires_in,
                "Expiration": "2030-01-01T00:00:00Z",
                "RequestId": "sts-req-ok",
            }
        }

    return handle


def test_assume_role_through_sts(emu: Any, monkeypatch: pytest.MonkeyPatch, json_server: Any) -> None:
    sts = emu.credential(sts=True)
    base = emu.credential()
    server = json_server(_sts_handler(sts, expires_in=7200))
    extras = {
        **emu.connection_extras(),
        **FAST_RETRY,
        "role_arn": "qcs::cam::uin/100000000001:roleName/airflow",
        "role_session_name": "airflow-test",
        "duration_seconds": 7200,
        "sts_endpoint": server.hostport,
    }
    conn = set_conn(monkeypatch, "tc_role", base.secret_id, base.secret_key, extras)
    emu.put_object(BUCKET, "a.txt", b"role")
    hook = CIHook(conn)
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"role"
    assert hook.get_object_bytes(BUCKET, "a.txt") == b"role"
    assert len(server.requests) == 1  # cached until refresh time
    method, _, body, headers = server.requests[0]
    assert method == "POST" and headers["X-TC-Action"] == "AssumeRole"
    assert f"Credential={base.secret_id}/" in headers["Authorization"]  # signed with the long-term key
    assert json.loads(body)["RoleSessionName"] == "airflow-test"

    # Temporary keys are refreshed well before expiry (the SDK refreshes after 10% of the lifetime).
    short = json_server(_sts_handler(sts, expires_in=60))
    conn2 = set_conn(
        monkeypatch, "tc_role2", base.secret_id, base.secret_key, {**extras, "sts_endpoint": short.hostport}
    )
    hook2 = CIHook(conn2)
    hook2.get_object_bytes(BUCKET, "a.txt")
    hook2.get_object_bytes(BUCKET, "a.txt")
    assert len(short.requests) >= 2


def test_assume_role_refused(emu: Any, monkeypatch: pytest.MonkeyPatch, json_server: Any) -> None:
    base = emu.credential()
    server = json_server(_sts_handler(emu.credential(sts=True), 7200, fail=True))
    extras = {**emu.connection_extras(), "role_arn": "qcs::cam::uin/1:roleName/x", "sts_endpoint": server.hostport}
    conn = set_conn(monkeypatch, "tc_role_bad", base.secret_id, base.secret_key, extras)
    with pytest.raises(TencentCloudAuthError) as info:
        CIHook(conn).get_object_bytes(BUCKET, "a.txt")
    assert info.value.code == "AuthFailure.SignatureFailure" and info.value.request_id == "sts-req-1"
    assert base.secret_key not in str(info.value)
    assert emu.stats.count() == 0
