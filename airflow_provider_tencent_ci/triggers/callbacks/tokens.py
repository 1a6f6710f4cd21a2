"""Callback URL tokens: the bearer secret in ``<callback_base_url>/<token>``.

``token = nonce + "." + HMAC-SHA256(key, nonce)`` (truncated, url-safe). A trigger's kwargs hold only the nonce.
Airflow 3.3.2 stores a deferral's trigger kwargs as plain JSON (the nonce is in clear in the ``trigger`` table), so
what protects a callback URL is the MAC with a key only the provider's processes have: ``[tencent_ci]
callback_token_key``, else ``[core] fernet_key``. Without either there is no usable token: building one raises
:class:`CallbackTokenKeyError` (the operator fails before it submits a job) and :func:`verify_token` refuses
every request, so the listener stays stateless and forged tokens are refused without a lookup.

Event-trigger channels use ``channel_token(name)`` (``ch-<name>.<mac>``), so a CI queue's callback URL can be
configured once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from urllib.parse import urlsplit

from airflow.exceptions import AirflowException

from airflow_provider_tencent_ci.common import config
from airflow_provider_tencent_ci.validation import check_name

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8799
TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.]{16,200}$")
MAC_LEN = 32
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")
_warned_wildcard = False


class CallbackTokenKeyError(AirflowException):
    """No key to sign callback tokens with: callbacks cannot be used safely."""

    def __init__(self) -> None:
        super().__init__(
            "CI callbacks need a token key: set [tencent_ci] callback_token_key (or [core] fernet_key) to the same "
            "secret on the workers and the triggerers (e.g. AIRFLOW__TENCENT_CI__CALLBACK_TOKEN_KEY), or wait by "
            "polling (use_callback_listener=False)"
        )


def _token_key() -> bytes | None:
    key = config.get("callback_token_key") or config.fernet_key()
    return key.encode() if key else None


def _require_key() -> bytes:
    key = _token_key()
    if key is None:
        raise CallbackTokenKeyError()
    return key


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, f"tencent-ci-callback:{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:MAC_LEN]


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def token_for_nonce(nonce: str) -> str:
    """The URL token for a job's nonce. :raises CallbackTokenKeyError: no key is configured."""
    return f"{nonce}.{_mac(_require_key(), nonce)}"


def channel_token(channel: str) -> str:
    """The token of a named channel (event triggers). :raises CallbackTokenKeyError: no key is configured."""
    name = f"ch-{check_name('channel', channel)}"
    return f"{name}.{_mac(_require_key(), name)}"


def verify_token(token: str) -> bool:
    """True when a token is well formed and carries a valid MAC; always False without a key."""
    if not TOKEN_RE.match(token):
        return False
    key = _token_key()
    if key is None:
        return False
    nonce, sep, mac = token.rpartition(".")
    return bool(sep) and hmac.compare_digest(mac, _mac(key, nonce))


def listener_host() -> str:
    return config.get("callback_listener_host", DEFAULT_HOST) or DEFAULT_HOST


def listener_port() -> int:
    return config.getint("callback_listener_port", DEFAULT_PORT)


def callback_base_url() -> str:
    """``[tencent_ci] callback_base_url``, else ``http://<listener host>:<listener port>``."""
    global _warned_wildcard
    base = config.get("callback_base_url")
    if not base:
        host = listener_host()
        if host in _WILDCARD_HOSTS:
            if not _warned_wildcard:
                _warned_wildcard = True
                log.warning(
                    "[tencent_ci] callback_listener_host=%s but no callback_base_url: CI is told to call back "
                    "http://127.0.0.1:%s, which only this machine can reach; set [tencent_ci] callback_base_url "
                    "to the address CI reaches this listener (or its load balancer) at",
                    host,
                    listener_port(),
                )
            host = "127.0.0.1"
        base = f"http://{host}:{listener_port()}"
    return base.rstrip("/")


def callback_base_path() -> str:
    """The path of the configured base URL ('' for none): callbacks arrive as ``<base path>/<token>``."""
    return urlsplit(callback_base_url()).path.rstrip("/")


def callback_url(token: str) -> str:
    return f"{callback_base_url()}/{token}"
