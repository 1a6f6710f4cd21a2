"""The provider's ``[tencent_ci]`` config section: the one way every module reads it.

Airflow 3.2+ offers the Task SDK's ``conf``; 3.1 only ``airflow.configuration.conf``. Reading never raises: a
process without an Airflow home (the emulator's tests, a benchmark) gets the fallback.
"""

from __future__ import annotations

from typing import Any

try:
    from airflow.sdk.configuration import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef]

SECTION = "tencent_ci"

__all__ = ["SECTION", "conf", "default_deferrable", "fernet_key", "get", "getint"]


def get(key: str, fallback: str = "") -> str:
    """``[tencent_ci] <key>`` as a string (the fallback when unset or unreadable)."""
    try:
        value: Any = conf.get(SECTION, key, fallback=fallback)
    except Exception:
        value = fallback
    return fallback if value is None else str(value)


def getint(key: str, fallback: int) -> int:
    """``[tencent_ci] <key>`` as an int (the fallback when unset or unreadable)."""
    try:
        return int(conf.getint(SECTION, key, fallback=fallback))
    except Exception:
        return fallback


def fernet_key() -> str:
    """``[core] fernet_key`` ('' when unset)."""
    try:
        return str(conf.get("core", "fernet_key", fallback="") or "")
    except Exception:
        return ""


def default_deferrable() -> bool:
    """``[operators] default_deferrable``: the default of every ``deferrable`` argument."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
