"""Hooks: TencentCloudBaseHook (connection, credentials, retry, masking), CIHook (COS + CI), BDAHook.

Imports are lazy so that importing the package (e.g. provider discovery) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_tencent_ci.hooks.base import TencentCloudBaseHook
    from airflow_provider_tencent_ci.hooks.bda import BDAHook
    from airflow_provider_tencent_ci.hooks.ci import CIHook, CIProcessResponse, JobsPage, JobsQuery

__all__ = ["BDAHook", "CIHook", "CIProcessResponse", "JobsPage", "JobsQuery", "TencentCloudBaseHook"]

_WHERE = {
    "TencentCloudBaseHook": "base",
    "BDAHook": "bda",
    "CIHook": "ci",
    "CIProcessResponse": "ci",
    "JobsPage": "ci",
    "JobsQuery": "ci",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(name)
