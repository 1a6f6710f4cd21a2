"""STS GetCallerIdentity (API 3.0, version 2018-08-13, host sts.tencentcloudapi.com; STS API doc cn 1312/66098).

The request is signed with TC3-HMAC-SHA256 (verified by the app like every API 3.0 request, service ``sts``) and
needs no permission. Every emulator credential belongs to one CAM user of one account, so the answer is fixed:
``{"Response": {"Arn", "AccountId", "UserId", "PrincipalId", "Type", "RequestId"}}``. For a sub-user key the doc's
sample has Type ``CAMUser`` and UserId = PrincipalId = the sub-user's uin; the ARN uses CAM's resource form
``qcs::cam::uin/<owner uin>:uin/<sub-user uin>`` (the doc's masked sample prints a shortened variant).
"""

from __future__ import annotations

import json

from .core import EmuRequest, EmuResponse, TcApiError

STS_SERVICE = "sts"
STS_VERSION = "2018-08-13"
ACCOUNT_UIN = "100000000001"
USER_UIN = "100000000002"
IDENTITY = {
    "Arn": f"qcs::cam::uin/{ACCOUNT_UIN}:uin/{USER_UIN}",
    "AccountId": ACCOUNT_UIN,
    "UserId": USER_UIN,
    "PrincipalId": USER_UIN,
    "Type": "CAMUser",
}


def handle(req: EmuRequest, action: str) -> EmuResponse:
    """Answer an STS action whose TC3 signature the app already verified (only GetCallerIdentity is emulated)."""
    version = req.headers.get("x-tc-version", "")
    if action != "GetCallerIdentity":
        raise TcApiError("InvalidAction", f"The requested action {action!r} does not exist.")
    if version != STS_VERSION:
        raise TcApiError("NoSuchVersion", f"The requested version {version!r} of STS does not exist.")
    payload = {"Response": {**IDENTITY, "RequestId": req.request_id}}
    # Exactly application/json: the SDK only parses error bodies with that exact type (no charset).
    return EmuResponse(200, json.dumps(payload).encode("utf-8"), {}, "application/json")
