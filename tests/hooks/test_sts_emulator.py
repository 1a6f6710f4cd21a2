"""The emulator's STS (emulator/sts.py), driven by the API 3.0 SDK's CommonClient: as strict as BDA's TC3 checks."""

from __future__ import annotations

from typing import Any

import pytest
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile


def _client(
    emu: Any, service: str = "sts", version: str = "2018-08-13", key: str | None = None, sts: bool = False
) -> Any:
    cred = emu.credential(sts=sts)
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", proxy=emu.url, endpoint=f"{service}.tencentcloudapi.com")
    )
    return CommonClient(
        service, version, Credential(cred.secret_id, key or cred.secret_key, cred.token), "ap-guangzhou", profile
    )


def test_get_caller_identity_answers_for_the_emulator_credentials(emu: Any) -> None:
    from airflow_provider_tencent_ci.emulator.sts import IDENTITY

    for sts in (False, True):
        reply = _client(emu, sts=sts).call_json("GetCallerIdentity", {})["Response"]
        assert {k: reply[k] for k in IDENTITY} == IDENTITY and reply["RequestId"]
    assert emu.stats.count(operation="GetCallerIdentity", ok=True) == 2


@pytest.mark.parametrize(
    ("kwargs", "action", "code"),
    [
        ({"key": "wrong-secret-key-000000000"}, "GetCallerIdentity", "AuthFailure.SignatureFailure"),
        ({}, "AssumeRoleWithSAML", "InvalidAction"),
        ({"version": "2020-01-01"}, "GetCallerIdentity", "NoSuchVersion"),
        ({"service": "bda", "version": "2020-03-24"}, "GetCallerIdentity", "InvalidAction"),  # BDA has no such action
    ],
)
def test_refusals(emu: Any, kwargs: dict[str, Any], action: str, code: str) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        _client(emu, **kwargs).call_json(action, {})
    assert info.value.get_code() == code and info.value.get_request_id()
    assert "wrong-secret-key" not in str(info.value)
