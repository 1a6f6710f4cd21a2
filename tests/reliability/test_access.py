"""Access: the emulator (our oracle for the real services) refuses requests signed with another key, expired
signatures, and requests of an STS credential without (or with a wrong) session token; and our hooks surface those
refusals as TencentCloudAuthError without retrying them and without leaking the key."""

from __future__ import annotations

import base64
import time
from typing import Any
from unittest import mock

import httpx
import pytest
from qcloud_cos.cos_exception import CosServiceError
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from airflow_provider_tencent_ci.exceptions import TencentCloudAuthError
from tests.reliability import _support
from tests.reliability._support import BUCKET, FULL_BUCKET


def _cos_code(fn: Any) -> tuple[int, str]:
    with pytest.raises(CosServiceError) as info:
        fn()
    return info.value.get_status_code(), info.value.get_error_code()


def test_cos_refuses_another_key(emu: Any, figures: Any) -> None:
    emu.put_object(BUCKET, "a.png", _support.png())
    good = emu.cos_client()
    assert good.get_object(Bucket=FULL_BUCKET, Key="a.png")["Body"].get_raw_stream().read()
    wrong_key = emu.cos_client(SecretKey="not-the-secret-key-000000000000")
    unknown_id = emu.cos_client(SecretId="AKIDUNKNOWN0000000000000000000000000")
    results = {
        "wrong_key": _cos_code(lambda: wrong_key.get_object(Bucket=FULL_BUCKET, Key="a.png")),
        "unknown_id": _cos_code(lambda: unknown_id.get_object(Bucket=FULL_BUCKET, Key="a.png")),
        "wrong_key_put": _cos_code(lambda: wrong_key.put_object(Bucket=FULL_BUCKET, Key="x.png", Body=b"x")),
    }
    assert results["wrong_key"] == (403, "SignatureDoesNotMatch")
    assert results["unknown_id"] == (403, "InvalidAccessKeyId")
    assert results["wrong_key_put"] == (403, "SignatureDoesNotMatch")
    assert emu.get_object(BUCKET, "x.png") is None  # nothing written by a refused request
    # The CI host (job API) checks the same signature.
    ci_code = _cos_code(lambda: wrong_key.ci_get_media_jobs(Bucket=FULL_BUCKET, JobIDs="a" + "0" * 32))
    assert ci_code == (403, "SignatureDoesNotMatch")
    figures.record("access: another key", refused=4, accepted_with_right_key=1)


def test_cos_refuses_expired_and_future_signatures(emu: Any, figures: Any) -> None:
    """Signatures made by the SDK's own signer with a window in the past (expired) or far in the future."""
    import qcloud_cos.cos_auth as cos_auth

    emu.put_object(BUCKET, "a.png", _support.png())
    client = emu.cos_client()
    url = f"http://{FULL_BUCKET}.cos.{emu.region}.myqcloud.com/a.png"

    def fetch(auth: str) -> httpx.Response:
        with httpx.Client(proxy=emu.url, trust_env=False) as http:
            return http.get(url, headers={"Authorization": auth})

    def signed_at(offset: float, expired: int) -> str:
        real = time.time
        with mock.patch.object(cos_auth.time, "time", lambda: real() + offset):
            return client.get_auth(Method="GET", Bucket=FULL_BUCKET, Key="a.png", Expired=expired)

    fresh = fetch(signed_at(0, 60))
    assert fresh.status_code == 200
    expired = fetch(signed_at(-3600, 60))  # valid for a minute, an hour ago
    assert expired.status_code == 403 and b"expired" in expired.content.lower()
    future = fetch(signed_at(7200, 60))  # starts two hours from now
    assert future.status_code == 403 and b"RequestTimeTooSkewed" in future.content
    figures.record("access: expired/future signature", refused=2, accepted_fresh=1)


def test_sts_credential_requires_its_token(emu: Any, figures: Any) -> None:
    emu.put_object(BUCKET, "a.png", _support.png())
    with_token = emu.cos_client(sts=True)
    assert with_token.head_object(Bucket=FULL_BUCKET, Key="a.png")
    no_token = emu.cos_client(sts=True, Token=None)
    wrong_token = emu.cos_client(sts=True, Token="emulator-session-token-WRONG0000000")
    assert _cos_code(lambda: no_token.get_object(Bucket=FULL_BUCKET, Key="a.png")) == (403, "AccessDenied")
    assert _cos_code(lambda: wrong_token.get_object(Bucket=FULL_BUCKET, Key="a.png")) == (403, "InvalidToken")
    # CI job API host: the token travels as x-ci-security-token.
    ci = _cos_code(lambda: no_token.ci_get_media_jobs(Bucket=FULL_BUCKET, JobIDs="a" + "0" * 32))
    assert ci == (403, "AccessDenied")
    ok_ci = with_token.ci_get_media_jobs(Bucket=FULL_BUCKET, JobIDs="a" + "0" * 32)
    assert ok_ci is not None
    figures.record("access: STS token required", refused=3, accepted_with_token=2)


def test_bda_refuses_wrong_key_missing_token_and_stale_timestamp(emu: Any, figures: Any) -> None:
    from tencentcloud.bda.v20200324 import models
    from tencentcloud.common import abstract_client

    def call(client: Any) -> Any:
        req = models.SegmentCustomizedPortraitPicRequest()
        req.from_json_string(
            f'{{"Image": "{base64.b64encode(_support.png()).decode()}", "SegmentationOptions": {{"Hair": true}}}}'
        )
        return client.SegmentCustomizedPortraitPic(req)

    def code(client: Any) -> str:
        with pytest.raises(TencentCloudSDKException) as info:
            call(client)
        return str(info.value.get_code())

    assert call(emu.bda_client(sts=True)).MaskImage
    wrong = emu.bda_client()
    wrong.credential.secret_key = "not-the-secret-key"
    assert code(wrong) == "AuthFailure.SignatureFailure"
    no_token = emu.bda_client(sts=True)
    no_token.credential.token = None
    assert code(no_token) == "AuthFailure.TokenFailure"
    # Only the SDK's clock is an hour behind (a module stand-in, not a global patch of time.time).
    fake_time = mock.Mock(wraps=time)
    fake_time.time = lambda: time.time() - 3600
    with mock.patch.object(abstract_client, "time", fake_time):
        stale = code(emu.bda_client())
    assert stale == "AuthFailure.SignatureExpire"
    figures.record("access: BDA TC3", refused=3, accepted=1)


def test_hook_surfaces_refusal_without_retry_or_leak(emu: Any, monkeypatch: pytest.MonkeyPatch, figures: Any) -> None:
    """Our hook with a wrong SecretKey: one request (auth errors are not retried), a TencentCloudAuthError naming the
    code, and the wrong key nowhere in the message."""
    from airflow_provider_tencent_ci.hooks.ci import CIHook

    emu.put_object(BUCKET, "a.png", _support.png())
    bad_key = "wrong-secret-key-for-this-test-1234"
    extras = {**emu.connection_extras(sts=True), **_support.FAST_RETRY}
    _support.set_conn(monkeypatch, "tc_badkey", emu.credential(sts=True).secret_id, bad_key, extras)
    _support.set_conn(
        monkeypatch,
        "tc_notoken",
        emu.credential(sts=True).secret_id,
        emu.credential(sts=True).secret_key,
        {**extras, "token": None},
    )
    emu.stats.reset()
    with pytest.raises(TencentCloudAuthError) as info:
        CIHook(tencentcloud_conn_id="tc_badkey").head_object(BUCKET, "a.png")
    assert emu.stats.count() == 1
    assert bad_key not in str(info.value)
    assert "SignatureDoesNotMatch" in str(info.value) or info.value.status_code == 403
    emu.stats.reset()
    with pytest.raises(TencentCloudAuthError):
        CIHook(tencentcloud_conn_id="tc_notoken").get_object_bytes(BUCKET, "a.png")
    assert emu.stats.count() == 1
    figures.record("access: hook with refused credential", requests_per_refused_call=1, retries=0)
