"""Where CI may send a job's callback: a base URL the cloud cannot reach is refused before anything is paid for.

Without ``[tencent_ci] callback_base_url`` the operator would tell CI ``http://127.0.0.1:8799/<token>``: against the
real cloud the callback never arrives, and the task waits for its slow fallback poll after paying for the job. A
connection targets the real cloud when it has no ``proxy``/``proxies`` and no custom ``cos_endpoint``/
``ci_endpoint`` (``hooks/credentials.py`` ``ConnectionConfig``); the emulator is reached through a proxy or a custom
endpoint, and there loopback stays allowed.

A host name other than ``localhost`` is not resolved here (no network call before submit; CI resolves it): only
literal addresses and loopback names are judged.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_tencent_ci.exceptions import ParameterValidationError

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.credentials import ConnectionConfig

CALLBACK_BASE_URL_SETTING = "[tencent_ci] callback_base_url"


def targets_real_cloud(config: ConnectionConfig) -> bool:
    """True when the connection's requests go to Tencent's own endpoints (no proxy, no custom COS/CI endpoint)."""
    return not (config.proxy or config.proxies or config.cos_endpoint or config.ci_endpoint)


def unreachable_reason(url: str) -> str | None:
    """Why the public cloud cannot reach ``url`` (None when nothing is known against it)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        return "has no host"
    if host == "localhost" or host.endswith(".localhost"):
        return "names the loopback host"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # 10/8, 172.16/12, 192.168/16 and fc00::/7 are "private"; loopback and link-local are named on their own.
    for kind in ("unspecified", "loopback", "link_local", "private"):
        if getattr(address, f"is_{kind}"):
            return f"is a {kind.replace('_', '-')} address"
    return None


def check_callback_base_url(base_url: str, config: ConnectionConfig) -> None:
    """Refuse a callback base URL the real cloud cannot reach (a no-op against the emulator or a proxy).

    :raises ParameterValidationError: naming ``callback_base_url``, the value and what to set.
    """
    if not targets_real_cloud(config):
        return
    reason = unreachable_reason(base_url)
    if reason is not None:
        raise ParameterValidationError(
            "callback_base_url",
            base_url,
            f"{reason} that Tencent Cloud cannot reach; set {CALLBACK_BASE_URL_SETTING} "
            "(AIRFLOW__TENCENT_CI__CALLBACK_BASE_URL) to a public https URL that reaches the triggerer's callback "
            "listener, or wait without use_callback_listener",
        )


__all__ = ["check_callback_base_url", "targets_real_cloud", "unreachable_reason"]
