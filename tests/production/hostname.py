"""``[core] hostname_callable`` for the production-shaped tests: each process reports the component it is."""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    return os.environ.get("TENCENT_CI_TEST_HOSTNAME") or socket.getfqdn()
