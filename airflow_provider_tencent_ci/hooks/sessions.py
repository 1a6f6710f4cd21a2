"""The one per-process HTTP connection pool of the provider's sync calls (the COS SDK's and our own signed ones)."""

from __future__ import annotations

import os
import threading

import requests
import requests.adapters

from airflow_provider_tencent_ci.constants import IMAGE_MAX_CONCURRENCY_LIMIT

_SESSIONS: dict[int, requests.Session] = {}
_LOCK = threading.Lock()


def http_session() -> requests.Session:
    """One connection pool per process, sized for the batch path's largest concurrency.

    The SDK's built-in pool holds 10 connections, fewer than ``max_concurrency`` allows, so a busy batch would
    open and drop connections ("Connection pool is full"). Keyed by pid: a forked task process gets its own.
    """
    pid = os.getpid()
    session = _SESSIONS.get(pid)
    if session is None:
        with _LOCK:
            session = _SESSIONS.get(pid)
            if session is None:
                session = requests.Session()
                adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=IMAGE_MAX_CONCURRENCY_LIMIT)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                _SESSIONS[pid] = session
    return session
