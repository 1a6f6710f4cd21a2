"""Connection extras parsed once, and the credential chain.

Order (ARCHITECTURE.md): SecretId/SecretKey in the connection (plus the ``token`` extra), else
TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY / TENCENTCLOUD_SESSION_TOKEN, else the CVM instance role when
``use_instance_role`` is true. ``role_arn`` assumes a CAM role through STS on top of the keys found first.

The SDK's ``STSAssumeRoleCredential`` and ``CVMRoleCredential`` do the fetching and the refresh before expiry;
we subclass them only to pass our scheme/proxy/endpoint/timeout and to turn silent failures into clear errors.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import urlopen

from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.credential import Credential as SdkCredential
from tencentcloud.common.credential import CVMRoleCredential, STSAssumeRoleCredential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from airflow_provider_tencent_ci.exceptions import ParameterValidationError, TencentCloudAuthError

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_RETRY_BASE_DELAY = 0.5
DEFAULT_RETRY_MAX_DELAY = 20.0
DURATION_MIN, DURATION_MAX = 900, 43200  # STS AssumeRole DurationSeconds limits
STS_HOST = "sts.tencentcloudapi.com"
STS_REGION = "ap-guangzhou"  # STS is global; API 3.0 still wants a region (the SDK's STS credential uses this one)


@dataclass(frozen=True)
class Credentials:
    """One usable key pair (and STS token). repr never shows the key or the token."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "connection"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off", ""):
        return value.strip().lower() in ("true", "1", "yes", "on")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ParameterValidationError(name, value, "must be a boolean (true/false)")


def _as_number(name: str, value: Any, lo: float, hi: float) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterValidationError(name, value, f"must be a number in {lo}..{hi}") from None
    if not lo <= number <= hi:
        raise ParameterValidationError(name, value, f"must be a number in {lo}..{hi}")
    return number


def _as_int(name: str, value: Any, lo: int, hi: int) -> int:
    number = _as_number(name, value, lo, hi)
    if number != int(number):
        raise ParameterValidationError(name, value, f"must be an integer in {lo}..{hi}")
    return int(number)


def _opt_str(extras: Mapping[str, Any], name: str) -> str | None:
    value = extras.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParameterValidationError(name, value, "must be a string")
    return value.strip()


def _extras(conn: Any) -> Mapping[str, Any]:
    """The connection's extras, parsed here rather than through ``Connection.extra_dejson``.

    ``extra_dejson`` hands every extra value to the secret masker; the hook registers only the extras that are
    secrets (``token``, ``console_base_url``). Airflow's own connection lookup still calls ``extra_dejson`` once
    (``get_uri``), which is why no extra we document needs a short string value (see :func:`_scheme`).
    """
    raw = getattr(conn, "extra", None)
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return raw
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise ParameterValidationError("extra", "<not shown>", "must be a JSON object") from None
    if not isinstance(value, Mapping):
        raise ParameterValidationError("extra", "<not shown>", "must be a JSON object")
    return value


def _scheme(extras: Mapping[str, Any]) -> str:
    """``use_https`` (a boolean: what the form and our own connections set), or ``scheme`` (``https``/``http``).

    A boolean because Airflow hands every string extra to its secret masker (``Connection.get_uri`` ->
    ``extra_dejson``), which warns "Skipping masking for a secret as it's too short" once per process for a value
    under 5 characters such as ``"http"``; a boolean is not a string and is never registered.
    """
    scheme = _opt_str(extras, "scheme")
    if scheme is not None and scheme.lower() not in ("http", "https"):
        raise ParameterValidationError("scheme", scheme, "must be http or https")
    if extras.get("use_https") in (None, ""):
        return (scheme or "https").lower()
    from_flag = "https" if _as_bool("use_https", extras["use_https"]) else "http"
    if scheme is not None and scheme.lower() != from_flag:
        raise ParameterValidationError(
            "scheme", scheme, f"contradicts use_https={extras['use_https']!r}: set only use_https"
        )
    return from_flag


@dataclass
class ConnectionConfig:
    """Everything the hooks need from one ``tencentcloud`` connection, validated."""

    conn_id: str
    secret_id: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    region: str | None = None
    appid: str | None = None
    role_arn: str | None = None
    role_session_name: str = "airflow"
    duration_seconds: int = 7200
    use_instance_role: bool = False
    scheme: str = "https"
    proxy: str | None = None
    proxies: dict[str, str] | None = None
    cos_endpoint: str | None = None
    ci_endpoint: str | None = None
    bda_endpoint: str | None = None
    # The emulator's read-only object view (``<url>/_emulator/view/<token>``) for extra links. It holds the
    # emulator's control token, a bearer secret: masked like one, and only ever an emulator's URL.
    console_base_url: str | None = field(default=None, repr=False)
    # Not in the public extras table: where STS and the CVM metadata service live (tests point them locally).
    sts_endpoint: str | None = None
    metadata_endpoint: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_base_delay: float = DEFAULT_RETRY_BASE_DELAY
    retry_max_delay: float = DEFAULT_RETRY_MAX_DELAY

    @classmethod
    def from_connection(cls, conn: Any, region: str | None = None) -> ConnectionConfig:
        extras = _extras(conn)
        cfg = cls(conn_id=getattr(conn, "conn_id", "") or "")
        cfg.secret_id = (conn.login or "").strip() or None
        cfg.secret_key = conn.password or None
        if cfg.secret_id and not cfg.secret_key:
            raise ParameterValidationError(
                "password", "<empty>", f"connection {cfg.conn_id!r}: SecretKey (password) is required with a SecretId"
            )
        cfg.token = _opt_str(extras, "token")
        cfg.region = region or _opt_str(extras, "region")
        appid = extras.get("appid")
        if appid not in (None, ""):
            if not str(appid).isdigit():
                raise ParameterValidationError("appid", appid, "must be the numeric APPID, e.g. 1250000000")
            cfg.appid = str(appid)
        cfg.role_arn = _opt_str(extras, "role_arn")
        cfg.role_session_name = _opt_str(extras, "role_session_name") or "airflow"
        if extras.get("duration_seconds") not in (None, ""):
            cfg.duration_seconds = _as_int("duration_seconds", extras["duration_seconds"], DURATION_MIN, DURATION_MAX)
        cfg.use_instance_role = _as_bool("use_instance_role", extras.get("use_instance_role", False))
        cfg.scheme = _scheme(extras)
        cfg.proxy = _opt_str(extras, "proxy")
        proxies = extras.get("proxies")
        if proxies not in (None, "", {}):
            if isinstance(proxies, str):
                try:
                    proxies = json.loads(proxies)
                except ValueError:
                    rule = "must be a dict such as {'https': URL}"
                    raise ParameterValidationError("proxies", proxies, rule) from None
            if not isinstance(proxies, dict) or not all(isinstance(v, str) for v in proxies.values()):
                raise ParameterValidationError("proxies", proxies, "must be a dict of scheme -> proxy URL")
            cfg.proxies = dict(proxies)
        for name in ("cos_endpoint", "ci_endpoint", "bda_endpoint", "sts_endpoint", "metadata_endpoint"):
            setattr(cfg, name, _opt_str(extras, name))
        console_base_url = _opt_str(extras, "console_base_url")
        if console_base_url is not None:
            if not console_base_url.startswith(("http://", "https://")):
                # The value is a bearer URL: never echoed in the error.
                raise ParameterValidationError("console_base_url", "<not shown>", "must be an http:// or https:// URL")
            cfg.console_base_url = console_base_url.rstrip("/")
        if extras.get("timeout") not in (None, ""):
            cfg.timeout = _as_number("timeout", extras["timeout"], 0.1, 3600)
        if extras.get("max_attempts") not in (None, ""):
            cfg.max_attempts = _as_int("max_attempts", extras["max_attempts"], 1, 20)
        if extras.get("retry_base_delay") not in (None, ""):
            cfg.retry_base_delay = _as_number("retry_base_delay", extras["retry_base_delay"], 0, 300)
        if extras.get("retry_max_delay") not in (None, ""):
            cfg.retry_max_delay = _as_number("retry_max_delay", extras["retry_max_delay"], 0, 3600)
        return cfg

    @property
    def use_https(self) -> bool:
        """The ``use_https`` extra as parsed (it and ``scheme`` set the same thing)."""
        return self.scheme == "https"

    def proxy_map(self) -> dict[str, str] | None:
        """Proxies as requests takes them (``proxy`` means the same proxy for both schemes)."""
        if self.proxies:
            return dict(self.proxies)
        if self.proxy:
            return {"http": self.proxy, "https": self.proxy}
        return None

    def proxy_for(self, scheme: str | None = None) -> str | None:
        proxies = self.proxy_map() or {}
        return proxies.get(scheme or self.scheme)

    def http_profile(self, endpoint: str | None) -> HttpProfile:
        """An API 3.0 HttpProfile honouring scheme, proxy, endpoint and timeout."""
        return HttpProfile(
            protocol=self.scheme,
            endpoint=endpoint,
            reqTimeout=int(max(1, round(self.timeout))),
            proxy=self.proxy_for(),
        )

    def sts_http_profile(self) -> HttpProfile:
        """The HttpProfile of STS calls (AssumeRole, GetCallerIdentity): ``sts_endpoint`` or the public host.

        A loopback ``sts_endpoint`` is reached directly: a proxy cannot reach this machine's loopback.
        """
        profile = self.http_profile(self.sts_endpoint or STS_HOST)
        if self.sts_endpoint and _is_loopback(self.sts_endpoint):
            profile.proxy = None
        return profile


def _is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class CredentialProvider(Protocol):
    source: str
    blocking: bool  # True when get() may do network I/O (run it off the event loop)

    def get(self) -> Credentials: ...


class StaticProvider:
    blocking = False

    def __init__(self, creds: Credentials) -> None:
        self._creds = creds
        self.source = creds.source

    def get(self) -> Credentials:
        return self._creds


class _ProfiledSTSCredential(STSAssumeRoleCredential):
    """The SDK's STS credential (refresh before expiry included), sending AssumeRole through our HttpProfile."""

    def __init__(self, base: Credentials, cfg: ConnectionConfig) -> None:
        super().__init__(base.secret_id, base.secret_key, cfg.role_arn, cfg.role_session_name, cfg.duration_seconds)
        self._base_token = base.token
        self._profile = cfg.sts_http_profile()

    def get_sts_tmp_role_arn(self) -> None:  # same as the SDK's, with our profile and the base token
        cred = SdkCredential(self._long_secret_id, self._long_secret_key, self._base_token)
        client = CommonClient(
            credential=cred,
            region=self._region,
            version=self._version,
            service=self._service,
            profile=ClientProfile(httpProfile=self._profile),
        )
        rsp = client.call_json(
            "AssumeRole",
            {
                "RoleArn": self._role_arn,
                "RoleSessionName": self._role_session_name,
                "DurationSeconds": self._duration_seconds,
            },
        )
        creds = rsp["Response"]["Credentials"]
        self._token = creds["Token"]
        self._tmp_secret_id = creds["TmpSecretId"]
        self._tmp_secret_key = creds["TmpSecretKey"]
        # The SDK refreshes once 10% of the lifetime has passed: far ahead of expiry.
        self._expired_time = rsp["Response"]["ExpiredTime"] - self._duration_seconds * 0.9


class STSRoleProvider:
    """Temporary keys of a CAM role (AssumeRole), refreshed by the SDK credential before they expire."""

    blocking = True
    source = "sts-assume-role"

    def __init__(self, base: Credentials, cfg: ConnectionConfig) -> None:
        self._cred = _ProfiledSTSCredential(base, cfg)
        self._role_arn = cfg.role_arn

    def get(self) -> Credentials:
        try:
            sid, key, token = self._cred.get_credential_info()
        except TencentCloudSDKException as exc:
            raise TencentCloudAuthError(
                f"assuming role {self._role_arn!r} through STS failed: the credential or role was refused "
                f"({exc.get_message()})",
                code=exc.get_code(),
                request_id=exc.get_request_id() or None,
                operation="AssumeRole",
            ) from None
        except Exception as exc:  # e.g. a malformed STS answer
            raise TencentCloudAuthError(
                f"assuming role {self._role_arn!r} through STS failed: {type(exc).__name__}", operation="AssumeRole"
            ) from None
        return Credentials(sid, key, token, self.source)


class _MetadataCVMRoleCredential(CVMRoleCredential):
    """The SDK's CVM role credential with a configurable metadata endpoint and timeout."""

    def __init__(self, metadata_endpoint: str | None, timeout: float) -> None:
        super().__init__()
        self.role: str | None = None
        base = (metadata_endpoint or self._metadata_endpoint).rstrip("/") + "/"
        self._role_endpoint = base + "cam/security-credentials/"
        self._timeout = timeout
        self.last_error: str | None = None

    def get_role_name(self) -> str | None:
        if not self.role:
            with urlopen(self._role_endpoint, timeout=self._timeout) as resp:
                self.role = resp.read().decode("utf8").strip()
        return self.role

    def update_credential(self) -> None:
        # The SDK swallows every failure here; keep the reason so get() can say why.
        if not self._need_refresh():
            return
        try:
            role = self.get_role_name()
            with urlopen(self._role_endpoint + str(role), timeout=self._timeout) as resp:
                data = json.loads(resp.read().decode("utf8"))
            if data.get("Code") != "Success":
                self.last_error = f"metadata service answered Code={data.get('Code')!r}"
                return
            self._secret_id = data["TmpSecretId"]
            self._secret_key = data["TmpSecretKey"]
            self._token = data["Token"]
            self._expired_ts = int(data["ExpiredTime"])
            self.last_error = None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"


class InstanceRoleProvider:
    """CVM instance role keys from the metadata service, refreshed 5 minutes before expiry (SDK behaviour)."""

    blocking = True
    source = "cvm-instance-role"

    def __init__(self, cfg: ConnectionConfig) -> None:
        self._cred = _MetadataCVMRoleCredential(cfg.metadata_endpoint, cfg.timeout)
        self._lock = threading.Lock()

    def get(self) -> Credentials:
        with self._lock:
            sid, key, token = self._cred.get_credential_info()
        if not sid or not key:
            raise TencentCloudAuthError(
                "no credentials: the CVM instance role credentials could not be read from the metadata service "
                f"({self._cred.last_error or 'no answer'})",
                operation="GetInstanceRoleCredentials",
            )
        return Credentials(sid, key, token, self.source)


def env_credentials() -> Credentials | None:
    sid = (os.environ.get(ENV_SECRET_ID) or "").strip()
    key = os.environ.get(ENV_SECRET_KEY) or ""
    if not sid or not key:
        return None
    return Credentials(sid, key, os.environ.get(ENV_SESSION_TOKEN) or None, "environment")


def build_provider(cfg: ConnectionConfig) -> CredentialProvider:
    """The credential chain of ARCHITECTURE.md for one connection."""
    base: Credentials | None = None
    if cfg.secret_id and cfg.secret_key:
        base = Credentials(cfg.secret_id, cfg.secret_key, cfg.token, "connection")
    else:
        base = env_credentials()
    if base is not None:
        if cfg.role_arn:
            return STSRoleProvider(base, cfg)
        return StaticProvider(base)
    if cfg.use_instance_role:
        return InstanceRoleProvider(cfg)
    raise TencentCloudAuthError(
        f"no credentials for connection {cfg.conn_id!r}: set login (SecretId) and password (SecretKey), or "
        f"{ENV_SECRET_ID}/{ENV_SECRET_KEY} in the environment, or extra use_instance_role=true",
        operation="ResolveCredentials",
    )
