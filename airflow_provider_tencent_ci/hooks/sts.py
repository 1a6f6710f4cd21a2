"""STS GetCallerIdentity (API 3.0, version 2018-08-13, TC3-HMAC-SHA256): who a key authenticates as.

GetCallerIdentity needs no CAM permission (STS API docs, "GetCallerIdentity"), which makes it the connection test:
a key scoped to one bucket passes. Reply fields: AccountId, Arn, UserId, PrincipalId, Type, RequestId.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile

from airflow_provider_tencent_ci.hooks.credentials import STS_REGION, ConnectionConfig, Credentials
from airflow_provider_tencent_ci.hooks.retry import RetryPolicy, SdkRetryer, translate_error

STS_SERVICE = "sts"
STS_API_VERSION = "2018-08-13"
STS_OPERATION = "GetCallerIdentity"


def get_caller_identity(
    cfg: ConnectionConfig, creds: Credentials, policy: RetryPolicy, logger: Any = None
) -> Mapping[str, Any]:
    """The ``Response`` of GetCallerIdentity, sent like AssumeRole (the connection's scheme, proxy, sts_endpoint)."""
    profile = ClientProfile(httpProfile=cfg.sts_http_profile())
    profile.retryer = SdkRetryer(policy, STS_OPERATION, logger=logger)
    profile.disable_region_breaker = True
    client = CommonClient(
        STS_SERVICE,
        STS_API_VERSION,
        SdkCredential(creds.secret_id, creds.secret_key, creds.token),
        cfg.region or STS_REGION,
        profile=profile,
    )
    try:
        reply = client.call_json(STS_OPERATION, {})
    except TencentCloudSDKException as exc:
        err = translate_error(exc, STS_OPERATION)
        if err is None:  # pragma: no cover - translate_error maps every SDK exception
            raise
        raise err from None
    response = reply.get("Response") if isinstance(reply, Mapping) else None
    if not isinstance(response, Mapping):
        raise ValueError("STS answered without a Response object")
    return response


def describe_identity(identity: Mapping[str, Any], secret_id: str) -> str:
    """A one-line summary without secrets: account, principal type and id, ARN, and the key's last 4 characters."""
    principal = identity.get("PrincipalId") or identity.get("UserId") or "?"
    return (
        f"Authenticated as account {identity.get('AccountId') or '?'}, {identity.get('Type') or 'principal'} "
        f"{principal}, ARN {identity.get('Arn') or '?'}, key {secret_id[:4]}…{secret_id[-4:]}"
    )
