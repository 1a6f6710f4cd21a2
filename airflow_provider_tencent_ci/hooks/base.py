"""TencentCloudBaseHook: lazy connection, credential chain, retry policy, secret masking, test_connection."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

from airflow_provider_tencent_ci.constants import CONN_TYPE, DEFAULT_CONN_ID
from airflow_provider_tencent_ci.exceptions import TencentCloudError
from airflow_provider_tencent_ci.hooks.credentials import (
    ConnectionConfig,
    CredentialProvider,
    Credentials,
    build_provider,
)
from airflow_provider_tencent_ci.hooks.retry import RetryPolicy, acall_with_retry, call_with_retry, translate_error
from airflow_provider_tencent_ci.hooks.sts import STS_OPERATION, describe_identity, get_caller_identity
from airflow_provider_tencent_ci.validation import require_region

try:
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - Airflow < 3.0 layouts
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined]

try:  # Airflow 3.1+: masks in this process and tells the supervisor
    from airflow.sdk.log import mask_secret as airflow_mask_secret
except ImportError:  # pragma: no cover
    from airflow.sdk.execution_time.secrets_masker import (  # type: ignore[no-redef]
        mask_secret as airflow_mask_secret,
    )

try:
    from airflow.sdk.log import amask_secret  # type: ignore[attr-defined]  # Airflow >= 3.2
except ImportError:  # pragma: no cover - older task SDK: the sync one is safe enough outside a running task
    amask_secret = None  # type: ignore[assignment]

T = TypeVar("T")


# Loggers of the SDKs: at DEBUG they print request headers (x-cos-security-token) and signing strings.
_SDK_LOGGERS = ("qcloud_cos", "tencentcloud_sdk_common", "tencentcloud")


class _RedactSecrets(logging.Filter):
    """Redacts registered secrets from SDK log records at the source.

    Airflow's masker redacts what reaches the task log, but records are seen unmasked by any other handler
    (pytest's caplog, a user's extra handler). Logger filters run before every handler, so this closes that gap.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        self.secrets.update({secret, quote(secret, safe="-_.~"), quote_plus(secret)})

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        redacted = message
        for secret in self.secrets:
            if secret in redacted:
                redacted = redacted.replace(secret, "***")
        if redacted is not message:
            record.msg, record.args = redacted, None
        return True


_REDACTOR = _RedactSecrets()


def _install_redactor() -> None:
    """Attach the filter to every SDK logger (filters of a parent logger do not apply to its children)."""
    names = [n for n in list(logging.root.manager.loggerDict) if n.split(".")[0] in _SDK_LOGGERS]
    for name in {*names, *_SDK_LOGGERS}:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


# cos-python-sdk-v5 logs every request's URL and headers at INFO; quiet unless the user set a level themselves.
_COS_SDK_LOGGER = "qcloud_cos"
_SDK_DEFAULT_LEVEL = logging.WARNING


class _ExpectedHeadMiss(logging.Filter):
    """Drops the COS SDK's ``WARNING {'code': 'NoSuchResource', ...}`` record of a HEAD answered 404.

    ``cos_client.send_request`` logs it for every HEAD of an absent object; for ``head_object`` that is the
    answer "not there yet" (the image operators ask it for every output), not something to warn about.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        return not (isinstance(msg, dict) and msg.get("code") == "NoSuchResource")


_HEAD_MISS_FILTER = _ExpectedHeadMiss()


def quiet_sdk_loggers() -> None:
    """SDK chatter at WARNING unless configured, and no warning for an expected HEAD 404 (idempotent)."""
    sdk = logging.getLogger(_COS_SDK_LOGGER)
    if sdk.level == logging.NOTSET:
        sdk.setLevel(_SDK_DEFAULT_LEVEL)
    client_logger = logging.getLogger(f"{_COS_SDK_LOGGER}.cos_client")
    if _HEAD_MISS_FILTER not in client_logger.filters:
        client_logger.addFilter(_HEAD_MISS_FILTER)


class TencentCloudBaseHook(BaseHook):
    """Shared base of the Tencent Cloud hooks.

    Nothing is resolved in ``__init__`` (hooks are built at DAG parse time); the connection and the credential
    provider are resolved on first use and cached. Every credential's SecretKey and token are registered with
    Airflow's secret masker as soon as they are known.

    :param tencentcloud_conn_id: the ``tencentcloud`` connection.
    :param region: overrides the connection's ``region`` extra.
    """

    conn_name_attr = "tencentcloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Tencent Cloud"

    def __init__(self, tencentcloud_conn_id: str = DEFAULT_CONN_ID, region: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tencentcloud_conn_id = tencentcloud_conn_id
        self._region_override = region
        self._config: ConnectionConfig | None = None
        self._provider: CredentialProvider | None = None
        self._masked: set[str] = set()
        self._lock = threading.RLock()

    # ---- connection and credentials -------------------------------------------------------------------------
    @property
    def config(self) -> ConnectionConfig:
        """The parsed connection (fetched once, on first use)."""
        if self._config is None:
            with self._lock:
                if self._config is None:
                    conn = self.get_connection(self.tencentcloud_conn_id)
                    self._set_config(ConnectionConfig.from_connection(conn, self._region_override))
        assert self._config is not None
        return self._config

    async def aget_config(self) -> ConnectionConfig:
        """Async twin of :attr:`config`: never blocks the event loop."""
        if self._config is None:
            aget = getattr(BaseHook, "aget_connection", None)
            if aget is not None:
                conn = await self.aget_connection(self.tencentcloud_conn_id)
            else:  # pragma: no cover - task SDK without aget_connection
                from asgiref.sync import sync_to_async

                conn = await sync_to_async(self.get_connection)(self.tencentcloud_conn_id)
            cfg = ConnectionConfig.from_connection(conn, self._region_override)
            quiet_sdk_loggers()
            # amask_secret: the sync one can deadlock against an in-flight supervisor call in async code.
            await self._amask(cfg.secret_key)
            await self._amask(cfg.token)
            await self._amask(cfg.console_base_url)
            if self._config is None:
                self._config = cfg
        assert self._config is not None
        return self._config

    def _set_config(self, cfg: ConnectionConfig) -> None:
        quiet_sdk_loggers()
        # Connection secrets are masked by Airflow already; the extras that are secrets are not: register them here.
        self.mask_secret(cfg.secret_key)
        self.mask_secret(cfg.token)
        self.mask_secret(cfg.console_base_url)  # the emulator view's URL holds its control token
        self._config = cfg

    @property
    def region(self) -> str | None:
        return self.config.region

    def require_region(self) -> str:
        """The region, or the clear error of :func:`~airflow_provider_tencent_ci.validation.require_region`."""
        return require_region(self.config.region)

    @property
    def retry_policy(self) -> RetryPolicy:
        cfg = self.config
        return RetryPolicy(cfg.max_attempts, cfg.retry_base_delay, cfg.retry_max_delay)

    def _get_provider(self) -> CredentialProvider:
        if self._provider is None:
            with self._lock:
                if self._provider is None:
                    self._provider = build_provider(self.config)
        return self._provider

    def get_credentials(self) -> Credentials:
        """Current credentials (temporary ones are refreshed by their provider before they expire)."""
        creds = self._get_provider().get()
        self.mask_secret(creds.secret_key)
        self.mask_secret(creds.token)
        return creds

    async def aget_credentials(self) -> Credentials:
        await self.aget_config()
        provider = self._get_provider()
        if provider.blocking:
            from asgiref.sync import sync_to_async

            creds = await sync_to_async(provider.get, thread_sensitive=False)()
        else:
            creds = provider.get()
        await self._amask(creds.secret_key)
        await self._amask(creds.token)
        return creds

    def mask_secret(self, secret: str | None) -> None:
        """Register ``secret`` with Airflow's secret masker and the SDK loggers' redaction (once per hook).

        For values the hook does not know are secret: e.g. a callback URL's token, a bearer URL from the
        connection.
        """
        if secret and secret not in self._masked:
            airflow_mask_secret(secret)
            self._redact(secret)

    async def _amask(self, secret: str | None) -> None:
        if secret and secret not in self._masked:
            if amask_secret is not None:
                await amask_secret(secret)
            else:  # pragma: no cover
                airflow_mask_secret(secret)
            self._redact(secret)

    def _redact(self, secret: str) -> None:
        self._masked.add(secret)
        _REDACTOR.add(secret)
        _install_redactor()

    # ---- calls ---------------------------------------------------------------------------------------------
    def _call(self, operation: str, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run ``fn`` with error mapping and the connection's retry policy."""
        return call_with_retry(
            fn, policy=self.retry_policy.with_idempotent(idempotent), operation=operation, logger=self.log
        )

    async def _acall(self, operation: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool = True) -> T:
        await self.aget_config()
        return await acall_with_retry(
            fn, policy=self.retry_policy.with_idempotent(idempotent), operation=operation, logger=self.log
        )

    # ---- Airflow UI / connection test -----------------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow < 3.2 builds the form from the hook class; 3.2+ reads the same facts from the provider info."""
        from airflow_provider_tencent_ci.get_provider_info import legacy_ui_field_behaviour

        return legacy_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from airflow_provider_tencent_ci.get_provider_info import legacy_connection_form_widgets

        return legacy_connection_form_widgets()

    def test_connection(self) -> tuple[bool, str]:
        """STS GetCallerIdentity: needs no permission, so a key scoped to one bucket passes too. Never raises.

        Returns who the key authenticated as (account, principal, ARN, the key's last four characters); never a
        secret.
        """
        try:
            creds = self.get_credentials()
            identity = get_caller_identity(self.config, creds, self.retry_policy, self.log)
            return True, describe_identity(identity, creds.secret_id)
        except TencentCloudError as exc:
            return False, str(exc)
        except Exception as exc:
            err = translate_error(exc, STS_OPERATION)
            return False, str(err) if err is not None else f"{type(exc).__name__}: {exc}"
