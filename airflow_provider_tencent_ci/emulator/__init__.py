"""Local emulator of the Tencent Cloud APIs this provider uses (COS objects, CI image processing and jobs, BDA).

It stands apart from the provider: it imports nothing from the rest of the package, nor airflow.

    from airflow_provider_tencent_ci.emulator import Emulator
    with Emulator() as emu:
        client = emu.cos_client()
"""

from __future__ import annotations

from .core import (
    DEFAULT_APPID,
    DEFAULT_REGION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    STS_SECRET_ID,
    STS_SECRET_KEY,
    STS_TOKEN,
    CosError,
    Credential,
    EmulatorState,
    EmuRequest,
    EmuResponse,
    TcApiError,
)
from .faults import CallbackPlan, FaultConfig, OperationFaults
from .pacing import LatencyModel, RateLimit
from .server import Emulator

__all__ = [
    "DEFAULT_APPID",
    "DEFAULT_REGION",
    "DEFAULT_SECRET_ID",
    "DEFAULT_SECRET_KEY",
    "STS_SECRET_ID",
    "STS_SECRET_KEY",
    "STS_TOKEN",
    "CallbackPlan",
    "CosError",
    "Credential",
    "EmuRequest",
    "EmuResponse",
    "Emulator",
    "EmulatorState",
    "FaultConfig",
    "LatencyModel",
    "OperationFaults",
    "RateLimit",
    "TcApiError",
]
