"""Signature verification: COS/CI ``q-sign-algorithm=sha1`` and API 3.0 ``TC3-HMAC-SHA256``.

COS (reproduces qcloud_cos/cos_auth.py CosS3Auth):
  HttpString   = "<method lower>\\n<decoded path>\\n<params>\\n<headers>\\n", where params/headers are
                 ``quote(k, '-_.~').lower()=quote(v, '-_.~')`` pairs sorted and joined by ``&``, restricted to the
                 names listed in q-url-param-list / q-header-list;
  StringToSign = "sha1\\n<q-sign-time>\\n<sha1 hex(HttpString)>\\n";
  SignKey      = HMAC-SHA1(SecretKey, q-key-time) hex; Signature = HMAC-SHA1(SignKey, StringToSign) hex.
The signature comes in the Authorization header or as query parameters (pre-signed URL). Query parameters that
are not listed in q-url-param-list are accepted unsigned, as the service does.

STS: the token goes in ``x-cos-security-token`` (COS hosts) or ``x-ci-security-token`` (CI host), header or query
parameter. The SDK signs that header (it is an ``x-cos-``/``x-ci-`` header); pre-signed URLs carry it unsigned, so
the emulator requires it present and equal, not signed. Missing -> 403 AccessDenied, different -> 403 InvalidToken.

TC3 (reproduces tencentcloud/common/abstract_client.py _get_tc3_signature) is verified with ``Sign.sign_tc3``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import quote

from .core import CosError, Credential, TcApiError

# Pre-signed URL parameters that carry the signature itself (never signed).
SIGN_PARAMS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)
TC3_MAX_SKEW = 300  # API 3.0: the timestamp may differ from server time by at most five minutes


def _q(s: str) -> str:
    return quote(s.encode("utf-8"), "-_.~")


def parse_cos_authorization(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split("&"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def cos_signature(
    secret_key: str,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    sign_time: str,
    key_time: str,
) -> str:
    """The q-signature for already-selected params/headers (names lower-cased, values raw)."""
    enc_params = sorted((_q(k).lower(), _q(v)) for k, v in params.items())
    enc_headers = sorted((_q(k).lower(), _q(v)) for k, v in headers.items())
    http_string = "{}\n{}\n{}\n{}\n".format(
        method.lower(),
        path,
        "&".join(f"{k}={v}" for k, v in enc_params),
        "&".join(f"{k}={v}" for k, v in enc_headers),
    )
    string_to_sign = "sha1\n{}\n{}\n".format(sign_time, hashlib.sha1(http_string.encode("utf-8")).hexdigest())
    sign_key = hmac.new(secret_key.encode("utf-8"), key_time.encode("utf-8"), hashlib.sha1).hexdigest()
    return hmac.new(sign_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha1).hexdigest()


def _time_window(value: str) -> tuple[int, int]:
    start, end = value.split(";", 1)
    return int(start), int(end)


def verify_cos(
    credentials: Mapping[str, Credential],
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    token_header: str,
    max_skew: int,
    now: float | None = None,
) -> Credential:
    """Check a COS/CI request; return the credential or raise CosError. ``query`` keys as sent (any case),
    values decoded; ``headers`` lower-case names; ``token_header`` is x-cos-security-token or x-ci-security-token."""
    now = time.time() if now is None else now
    auth = headers.get("authorization", "")
    if auth:
        fields = parse_cos_authorization(auth)
    else:
        lower_q = {k.lower(): v for k, v in query.items()}
        fields = {k: lower_q[k] for k in SIGN_PARAMS if k in lower_q}
        if not fields:
            raise CosError(403, "AccessDenied", "Access Denied.")
    missing = [k for k in SIGN_PARAMS if k not in fields]
    if missing:
        raise CosError(403, "AccessDenied", f"Authorization is malformed: missing {', '.join(missing)}.")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise CosError(403, "AccessDenied", "Authorization is malformed: q-sign-algorithm must be sha1.")
    cred = credentials.get(fields["q-ak"])
    if cred is None:
        raise CosError(403, "InvalidAccessKeyId", "The access key Id format you provided is invalid.")
    try:
        k_start, k_end = _time_window(fields["q-key-time"])
        s_start, s_end = _time_window(fields["q-sign-time"])
    except ValueError:
        raise CosError(403, "AccessDenied", "Authorization is malformed: invalid q-key-time or q-sign-time.") from None
    if now > min(k_end, s_end):
        raise CosError(403, "AccessDenied", "Request has expired")
    if max(k_start, s_start) > now + max_skew:
        raise CosError(
            403,
            "RequestTimeTooSkewed",
            "The difference between the request time and the server's time is too large.",
        )

    header_names = [h for h in fields["q-header-list"].split(";") if h]
    param_names = [p for p in fields["q-url-param-list"].split(";") if p]
    # Names in the lists are url-encoded and lower-cased; map the request's names the same way.
    req_headers = {_q(k).lower(): v for k, v in headers.items()}
    req_params = {_q(k).lower(): v for k, v in query.items() if k.lower() not in SIGN_PARAMS}
    sel_headers: dict[str, str] = {}
    for h in header_names:
        if h not in req_headers:
            raise CosError(403, "SignatureDoesNotMatch", f"Signed header {h} is missing from the request.")
        sel_headers[h] = req_headers[h]
    sel_params: dict[str, str] = {}
    for p in param_names:
        if p not in req_params:
            raise CosError(403, "SignatureDoesNotMatch", f"Signed parameter {p} is missing from the request.")
        sel_params[p] = req_params[p]

    def matches(hdrs: Mapping[str, str]) -> bool:
        expected = cos_signature(
            cred.secret_key, method, path, sel_params, hdrs, fields["q-sign-time"], fields["q-key-time"]
        )
        return hmac.compare_digest(expected, fields["q-signature"].lower())

    ok = matches(sel_headers)
    if not ok and "host" in sel_headers and ":" in sel_headers["host"]:
        # The SDK signs urlparse(url).hostname (no port) while sending Host with the port.
        ok = matches({**sel_headers, "host": sel_headers["host"].rsplit(":", 1)[0]})
    if not ok:
        raise CosError(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )

    if cred.token is not None:
        lower_q = {k.lower(): v for k, v in query.items()}
        token = headers.get(token_header, lower_q.get(token_header))
        if token is None:
            raise CosError(403, "AccessDenied", f"Request with a temporary key must carry {token_header}.")
        if not hmac.compare_digest(token.encode("utf-8"), cred.token.encode("utf-8")):
            raise CosError(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    return cred


def _tc3_fields(headers: Mapping[str, str]) -> dict[str, str]:
    """The fields (Credential, SignedHeaders, Signature) of a TC3-HMAC-SHA256 Authorization header."""
    auth = headers.get("authorization", "")
    if not auth:
        raise TcApiError("AuthFailure.SignatureFailure", "The Authorization header is missing.")
    algo, _, rest = auth.partition(" ")
    if algo != "TC3-HMAC-SHA256":
        raise TcApiError("AuthFailure.SignatureFailure", "Only the TC3-HMAC-SHA256 signature method is supported.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        if "=" in item:
            k, v = item.strip().split("=", 1)
            fields[k] = v
    return fields


def _known_credential(credentials: Mapping[str, Credential], secret_id: str) -> Credential:
    cred = credentials.get(secret_id)
    if cred is None:
        raise TcApiError(
            "AuthFailure.SecretIdNotFound", "The SecretId is not found, please ensure that your SecretId is correct."
        )
    return cred


def require_tc3_credential(credentials: Mapping[str, Credential], headers: Mapping[str, str]) -> Credential:
    """What of a TC3 request can be checked before its body (the signature covers the body's hash): a TC3
    Authorization header naming a known SecretId. :func:`verify_tc3` does the full check once the body is read."""
    credential = _tc3_fields(headers).get("Credential", "")
    if credential.count("/") != 3:
        raise TcApiError("AuthFailure.SignatureFailure", "The Authorization header is malformed.")
    return _known_credential(credentials, credential.split("/")[0])


def verify_tc3(
    credentials: Mapping[str, Credential],
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    now: float | None = None,
) -> Credential:
    """Check an API 3.0 request signed with TC3-HMAC-SHA256; return the credential or raise TcApiError."""
    from tencentcloud.common.sign import Sign  # the SDK's own primitive; imported lazily (cheap module import)

    now = time.time() if now is None else now
    parts = _tc3_fields(headers)
    try:
        secret_id, date, scope_service, terminator = parts["Credential"].split("/")
        signed_headers = parts["SignedHeaders"]
        signature = parts["Signature"]
    except (KeyError, ValueError):
        raise TcApiError("AuthFailure.SignatureFailure", "The Authorization header is malformed.") from None
    try:
        timestamp = int(headers.get("x-tc-timestamp", ""))
    except ValueError:
        raise TcApiError("AuthFailure.SignatureFailure", "X-TC-Timestamp is missing or invalid.") from None
    if abs(now - timestamp) > TC3_MAX_SKEW:
        raise TcApiError(
            "AuthFailure.SignatureExpire",
            "Signature expired. Timestamp and server time cannot differ by more than 5 minutes.",
        )
    cred = _known_credential(credentials, secret_id)
    if terminator != "tc3_request" or scope_service != service:
        raise TcApiError("AuthFailure.SignatureFailure", "The credential scope is invalid.")
    if date != datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d"):
        raise TcApiError("AuthFailure.SignatureFailure", "The credential date does not match X-TC-Timestamp.")

    names = [h for h in signed_headers.split(";") if h]
    # TC3 canonical headers: names and values lower-cased, values trimmed
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip().lower()}\n" for h in names)
    if headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
        payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()
    else:
        payload_hash = hashlib.sha256(b"" if method == "GET" else body).hexdigest()
    canonical_request = "\n".join(
        [method, path, raw_query if method == "GET" else "", canonical_headers, signed_headers, payload_hash]
    )
    string_to_sign = "TC3-HMAC-SHA256\n{}\n{}\n{}".format(
        timestamp, f"{date}/{service}/tc3_request", hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    )
    expected = Sign.sign_tc3(cred.secret_key, date, service, string_to_sign)
    if not hmac.compare_digest(expected, signature.lower()):
        raise TcApiError(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        )
    if cred.token is not None:
        token = headers.get("x-tc-token")
        if token is None or not hmac.compare_digest(token.encode("utf-8"), cred.token.encode("utf-8")):
            raise TcApiError("AuthFailure.TokenFailure", "Token verification failed.")
    return cred
