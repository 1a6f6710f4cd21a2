"""Signature checks: COS q-sign (header and pre-signed URL), STS tokens on COS and CI hosts, BDA TC3."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from qcloud_cos import CosServiceError, cos_auth
from tencentcloud.bda.v20200324 import models
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from airflow_provider_tencent_ci.emulator import STS_TOKEN, Emulator

from .conftest import BUCKET

HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
CI_HOST = f"{BUCKET}.ci.ap-guangzhou.myqcloud.com"


def _send(emu: Emulator, method: str, url: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, url, proxies={"http": emu.url}, timeout=10, **kwargs)


def _error(resp: requests.Response) -> tuple[int, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(resp.content)
    assert {c.tag for c in root} >= {"Code", "Message", "Resource", "RequestId"}
    return resp.status_code, root.findtext("Code") or ""


def _cos_error(fn: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(CosServiceError) as exc:
        fn(**kwargs)
    return exc.value.get_status_code(), exc.value.get_error_code()


# -- COS ---------------------------------------------------------------------------------------------------------
def test_signed_calls_accepted_plain_and_sts(emu: Emulator, cos: Any, cos_sts: Any) -> None:
    cos.put_object(Bucket=BUCKET, Key="a.txt", Body=b"a")
    cos_sts.put_object(Bucket=BUCKET, Key="b.txt", Body=b"b")
    assert cos_sts.list_objects(Bucket=BUCKET)["Contents"]
    assert emu.stats.count(ok=False) == 0
    assert emu.stats.count(ok=True) == 3


def test_wrong_secret_key(emu: Emulator) -> None:
    client = emu.cos_client(SecretKey="not-the-key")
    assert _cos_error(client.put_object, Bucket=BUCKET, Key="k", Body=b"x") == (403, "SignatureDoesNotMatch")


def test_unknown_secret_id(emu: Emulator) -> None:
    client = emu.cos_client(SecretId="AKIDUNKNOWN", SecretKey="x")
    assert _cos_error(client.get_object, Bucket=BUCKET, Key="k") == (403, "InvalidAccessKeyId")


def test_anonymous_refused(emu: Emulator) -> None:
    assert _error(_send(emu, "GET", f"http://{HOST}/k")) == (403, "AccessDenied")


def test_expired_signature(emu: Emulator, cos: Any) -> None:
    auth = cos.get_auth(Method="GET", Bucket=BUCKET, Key="k", Expired=-120)  # window ends 2 minutes ago
    assert _error(_send(emu, "GET", f"http://{HOST}/k", headers={"Authorization": auth})) == (403, "AccessDenied")


def test_key_time_in_the_future(emu: Emulator, cos: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    future = time.time() + 7200
    monkeypatch.setattr(cos_auth, "time", SimpleNamespace(time=lambda: future))  # the SDK's clock only
    assert _cos_error(cos.get_object, Bucket=BUCKET, Key="k") == (403, "RequestTimeTooSkewed")


def test_small_clock_skew_accepted(emu: Emulator, cos: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = time.time() + 120
    monkeypatch.setattr(cos_auth, "time", SimpleNamespace(time=lambda: ahead))
    cos.put_object(Bucket=BUCKET, Key="k", Body=b"x")


def test_tampered_signed_param(emu: Emulator, cos: Any) -> None:
    auth = cos.get_auth(Method="GET", Bucket=BUCKET, Key="/", Params={"prefix": "a"})
    ok = _send(emu, "GET", f"http://{HOST}/?prefix=a", headers={"Authorization": auth})
    assert ok.status_code == 200
    bad = _send(emu, "GET", f"http://{HOST}/?prefix=b", headers={"Authorization": auth})
    assert _error(bad) == (403, "SignatureDoesNotMatch")


def test_tampered_signed_header(emu: Emulator, cos: Any) -> None:
    auth = cos.get_auth(Method="PUT", Bucket=BUCKET, Key="h", Headers={"x-cos-meta-a": "1"})
    ok = _send(emu, "PUT", f"http://{HOST}/h", headers={"Authorization": auth, "x-cos-meta-a": "1"}, data=b"x")
    assert ok.status_code == 200
    bad = _send(emu, "PUT", f"http://{HOST}/h", headers={"Authorization": auth, "x-cos-meta-a": "2"}, data=b"x")
    assert _error(bad) == (403, "SignatureDoesNotMatch")
    missing = _send(emu, "PUT", f"http://{HOST}/h", headers={"Authorization": auth}, data=b"x")
    assert _error(missing) == (403, "SignatureDoesNotMatch")


def test_tampered_path(emu: Emulator, cos: Any) -> None:
    auth = cos.get_auth(Method="GET", Bucket=BUCKET, Key="one")
    emu.put_object("examplebucket", "two", b"2")
    assert _error(_send(emu, "GET", f"http://{HOST}/two", headers={"Authorization": auth})) == (
        403,
        "SignatureDoesNotMatch",
    )


def test_presigned_url(emu: Emulator, cos: Any, cos_sts: Any) -> None:
    emu.put_object("examplebucket", "dir/p q.txt", b"presigned")
    url = cos.get_presigned_url(Bucket=BUCKET, Key="dir/p q.txt", Method="GET")
    assert _send(emu, "GET", url).content == b"presigned"
    # STS pre-signed URLs carry the token as a query parameter
    url = cos_sts.get_presigned_url(
        Bucket=BUCKET, Key="dir/p q.txt", Method="GET", Params={"x-cos-security-token": STS_TOKEN}
    )
    assert _send(emu, "GET", url).content == b"presigned"
    bare = cos_sts.get_presigned_url(Bucket=BUCKET, Key="dir/p q.txt", Method="GET")
    assert _error(_send(emu, "GET", bare)) == (403, "AccessDenied")


def test_sts_token_missing_or_wrong(emu: Emulator) -> None:
    no_token = emu.cos_client(sts=True, Token=None)
    assert _cos_error(no_token.put_object, Bucket=BUCKET, Key="k", Body=b"x") == (403, "AccessDenied")
    wrong = emu.cos_client(sts=True, Token="some-other-token")
    assert _cos_error(wrong.put_object, Bucket=BUCKET, Key="k", Body=b"x") == (403, "InvalidToken")
    assert emu.get_object("examplebucket", "k") is None


def test_ci_host_requires_x_ci_security_token(emu: Emulator, cos_sts: Any) -> None:
    """CI job calls carry the token as x-ci-security-token (the SDK's ci_request path)."""
    wrong = emu.cos_client(sts=True, Token="bad")
    assert _cos_error(wrong.ci_list_media_jobs, Bucket=BUCKET, Tag="SegmentVideoBody") == (403, "InvalidToken")
    # A token under the COS header name does not count on the CI host.
    auth = cos_sts.get_auth(
        Method="GET", Bucket=BUCKET, Key="jobs", Headers={"x-cos-security-token": STS_TOKEN}, UseCiEndPoint=True
    )
    resp = _send(
        emu, "GET", f"http://{CI_HOST}/jobs", headers={"Authorization": auth, "x-cos-security-token": STS_TOKEN}
    )
    assert _error(resp) == (403, "AccessDenied")
    # The right token passes authentication (the job engine answers whatever it answers, never 403).
    good = emu.cos_client(sts=True)
    try:
        good.ci_list_media_jobs(Bucket=BUCKET, Tag="SegmentVideoBody")
    except CosServiceError as exc:
        assert exc.get_status_code() != 403


def test_error_reply_has_four_fields_and_request_id_header(emu: Emulator) -> None:
    resp = _send(emu, "GET", f"http://{HOST}/k")
    status, _ = _error(resp)
    assert status == 403
    assert resp.headers["x-cos-request-id"]
    assert resp.headers["Content-Type"] == "application/xml"


# -- BDA (API 3.0, TC3-HMAC-SHA256) ----------------------------------------------------------------------------
def _segment(client: Any) -> Any:
    req = models.SegmentCustomizedPortraitPicRequest()
    req.from_json_string(json.dumps({"Url": "http://example.invalid/p.jpg", "SegmentationOptions": {"Hair": True}}))
    return client.SegmentCustomizedPortraitPic(req)


def _bda_code(client: Any) -> str:
    try:
        _segment(client)
    except TencentCloudSDKException as exc:
        assert exc.get_request_id()
        return str(exc.get_code())
    return "OK"


@pytest.mark.parametrize("sts", [False, True])
def test_bda_signed_call_passes_auth(emu: Emulator, sts: bool) -> None:
    code = _bda_code(emu.bda_client(sts=sts))
    assert not code.startswith("AuthFailure")
    assert emu.stats.count(operation="SegmentCustomizedPortraitPic") == 1


def test_bda_wrong_key(emu: Emulator) -> None:
    from tencentcloud.common.credential import Credential

    client = emu.bda_client()
    client.credential = Credential(emu.secret_id, "wrong-key")
    assert _bda_code(client) == "AuthFailure.SignatureFailure"


def test_bda_unknown_secret_id(emu: Emulator) -> None:
    from tencentcloud.common.credential import Credential

    client = emu.bda_client()
    client.credential = Credential("AKIDNOBODY", "k")
    assert _bda_code(client) == "AuthFailure.SecretIdNotFound"


def test_bda_timestamp_skew(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    past = time.time() - 3600
    monkeypatch.setattr(abstract_client, "time", SimpleNamespace(time=lambda: past))
    assert _bda_code(emu.bda_client()) == "AuthFailure.SignatureExpire"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_bda_sts_token(emu: Emulator, token: str | None) -> None:
    from tencentcloud.common.credential import Credential

    sts = emu.credential(sts=True)
    client = emu.bda_client()
    client.credential = Credential(sts.secret_id, sts.secret_key, token)
    assert _bda_code(client) == "AuthFailure.TokenFailure"


def test_bda_unknown_action(emu: Emulator) -> None:
    with pytest.raises(TencentCloudSDKException) as exc:
        emu.bda_client().call_json("NoSuchThing", {})
    assert exc.value.get_code() == "InvalidAction"


def test_bda_unsupported_region(emu: Emulator) -> None:
    assert _bda_code(emu.bda_client(region="ap-singapore")) == "UnsupportedRegion"


def test_bda_endpoint_pointed_at_the_emulator_directly(emu: Emulator) -> None:
    """HttpProfile(endpoint='127.0.0.1:PORT'): the signed Host carries the port; still verified."""
    from tencentcloud.bda.v20200324.bda_client import BdaClient
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=f"127.0.0.1:{emu.port}", protocol="http"))
    client = BdaClient(Credential(emu.secret_id, emu.secret_key), "ap-guangzhou", profile)
    assert not _bda_code(client).startswith("AuthFailure")
    client.credential = Credential(emu.secret_id, "bad")
    assert _bda_code(client) == "AuthFailure.SignatureFailure"
