"""``Emulator``: the emulator as a Python object, serving on a background thread (uvicorn on its own loop)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from .core import (
    BDA_HOST,
    DEFAULT_APPID,
    DEFAULT_REGION,
    DEFAULT_SECRET_ID,
    DEFAULT_SECRET_KEY,
    STS_SECRET_ID,
    Credential,
    EmulatorState,
)
from .faults import FaultConfig
from .jobs import DEFAULT_WORKFLOW_NAME, CallbackVariants, start_workflow_job
from .pacing import LatencyModel, RateLimit
from .store import ObjectRecord

# Environment variable with the control token for the CLI (serving: its default; client commands: --token's default).
CONTROL_TOKEN_ENV = "TENCENT_CI_EMULATOR_TOKEN"


class Emulator:
    """A local Tencent COS/CI/BDA endpoint. Reach it through ``proxy=self.url`` while keeping real host names.

    Every method is safe to call from any thread; state changes that touch the job engine run on the server loop.

    The HTTP control API under ``/_emulator/`` (see ``control.py``) needs ``control_token``: generated at
    construction unless given (the CLI also reads ``TENCENT_CI_EMULATOR_TOKEN``). ``console_base_url`` is the read-only
    object view with the token in its path, for browser links.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        credentials: Iterable[Credential | tuple[str, str] | tuple[str, str, str | None]] | None = None,
        faults: FaultConfig | None = None,
        appid: str = DEFAULT_APPID,
        region: str = DEFAULT_REGION,
        buckets: Iterable[str] = ("examplebucket",),
        log_level: str = "warning",
        bda_hosts: Iterable[str] = (),
        control_token: str | None = None,
        max_object_bytes: int | None = None,
    ) -> None:
        creds: list[Credential] | None = None
        if credentials is not None:
            creds = [c if isinstance(c, Credential) else Credential(*c) for c in credentials]
        self.host = host
        self.control_token: str = control_token or secrets.token_urlsafe(24)
        self.max_object_bytes = max_object_bytes
        self._requested_port = port
        self.log_level = log_level
        self.state = EmulatorState(
            appid=appid,
            default_region=region,
            data_dir=data_dir,
            credentials=creds,
            faults=faults,
            bda_hosts=(BDA_HOST, *bda_hosts),  # extra host names answered as BDA (private endpoints)
        )
        self.initial_buckets = [self.state.full_bucket(b) for b in buckets]
        for b in self.initial_buckets:
            self.state.store.create_bucket(b)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.port: int = port

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Emulator:
        """Bind, start serving on a background thread, and return once requests are accepted."""
        if self._thread is not None:
            return self
        import uvicorn

        from .app import MAX_OBJECT_BYTES, EmulatorApp
        from .control import ControlAPI

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
        # every response (headers and body are two writes) stalls 40 ms on Nagle + delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(4096)  # benchmarks open thousands of concurrent connections
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        max_bytes = self.max_object_bytes or MAX_OBJECT_BYTES
        control = ControlAPI(self.state, self.control_token, self, own_hosts=(self.host,), max_upload_bytes=max_bytes)
        config = uvicorn.Config(
            EmulatorApp(self.state, control, max_object_bytes=max_bytes),
            # h11, not httptools: uvicorn's httptools protocol lower-cases response header names, and the COS SDK
            # hands headers to callers as a case-sensitive dict (resp["ETag"], resp["Content-Range"]).
            http="h11",
            lifespan="on",
            log_level=self.log_level,
            access_log=False,
            server_header=False,
            date_header=False,
            backlog=4096,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=5,  # stop() must not hang on in-flight slow (latency-faulted) calls
        )
        server = uvicorn.Server(config)
        self._server = server
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(server, sock, ready))
            except BaseException as exc:  # reported by start()
                self._error = exc
            finally:
                ready.set()
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=f"tencent-emulator-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or not server.started:
            self.stop()
            raise RuntimeError(f"Tencent CI emulator failed to start on {self.host}:{self.port}: {self._error!r}")
        return self

    async def _serve(self, server: Any, sock: socket.socket, ready: threading.Event) -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        await task

    def stop(self, timeout: float = 30.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._server = None
        self._loop = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` on the server loop (awaiting it if it returns an awaitable) and return its result."""
        loop = self._loop
        if loop is None or not loop.is_running():
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):

                async def wait() -> Any:
                    return await result

                result = asyncio.run(wait())
            return result
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)

        async def runner() -> Any:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), loop).result(timeout=60)

    # -- addresses and connections ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def control_url(self) -> str:
        """Base of the control API (send ``Authorization: Bearer <control_token>``)."""
        return f"{self.url}/_emulator"

    @property
    def control_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.control_token}"}

    @property
    def console_base_url(self) -> str:
        """The read-only object view for browsers (token in the path): ``/objects/<bucket>/<key>`` and
        ``/jobs/<bucket>/<job_id>`` below it. It is a bearer secret like the token."""
        return f"{self.url}/_emulator/view/{quote(self.control_token, safe='')}"

    @property
    def appid(self) -> str:
        return self.state.appid

    @property
    def region(self) -> str:
        return self.state.default_region

    @property
    def secret_id(self) -> str:
        return DEFAULT_SECRET_ID

    @property
    def secret_key(self) -> str:
        return DEFAULT_SECRET_KEY

    def credential(self, sts: bool = False) -> Credential:
        """The default plain credential, or the STS one (its token is required on every request)."""
        wanted = STS_SECRET_ID if sts else DEFAULT_SECRET_ID
        cred = self.state.credentials.get(wanted)
        if cred is None:  # custom credentials: first plain / first STS one
            cred = next((c for c in self.state.credentials.values() if (c.token is not None) == sts), None)
        if cred is None:
            raise LookupError(f"the emulator has no {'STS' if sts else 'plain'} credential")
        return cred

    def add_credential(self, secret_id: str, secret_key: str, token: str | None = None) -> None:
        self.state.credentials[secret_id] = Credential(secret_id, secret_key, token)

    def connection_extras(self, sts: bool = False) -> dict[str, Any]:
        extras: dict[str, Any] = {
            "region": self.region,
            "appid": self.appid,
            # A boolean rather than "scheme": "http": Airflow hands every string extra to its secret masker,
            # which warns in every task log about a value that short. No extra here is a short string.
            "use_https": False,
            "proxy": self.url,
            "console_base_url": self.console_base_url,
        }
        if sts:
            extras["token"] = self.credential(sts=True).token
        return extras

    def connection_uri(self, sts: bool = False) -> str:
        cred = self.credential(sts)
        query = urlencode(self.connection_extras(sts))
        return f"tencentcloud://{quote(cred.secret_id, safe='')}:{quote(cred.secret_key, safe='')}@/?{query}"

    def airflow_conn_env(self, conn_id: str = "tencentcloud_default", sts: bool = False) -> tuple[str, str]:
        cred = self.credential(sts)
        value = {
            "conn_type": "tencentcloud",
            "login": cred.secret_id,
            "password": cred.secret_key,
            "extra": self.connection_extras(sts),
        }
        return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value)

    def cos_client(self, sts: bool = False, **config: Any) -> Any:
        """A qcloud_cos ``CosS3Client`` wired to this emulator (``config`` overrides CosConfig arguments)."""
        from qcloud_cos import CosConfig, CosS3Client

        cred = self.credential(sts)
        kwargs: dict[str, Any] = {
            "Region": self.region,
            "SecretId": cred.secret_id,
            "SecretKey": cred.secret_key,
            "Token": cred.token,
            "Scheme": "http",
            "Proxies": {"http": self.url, "https": self.url},
        }
        kwargs.update(config)
        retry = kwargs.pop("retry", 0)
        return CosS3Client(CosConfig(**kwargs), retry=retry)

    def bda_client(self, sts: bool = False, region: str | None = None) -> Any:
        """A tencentcloud ``BdaClient`` wired to this emulator through its proxy setting."""
        from tencentcloud.bda.v20200324.bda_client import BdaClient
        from tencentcloud.common.credential import Credential as TcCredential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile

        cred = self.credential(sts)
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", proxy=self.url))
        return BdaClient(TcCredential(cred.secret_id, cred.secret_key, cred.token), region or self.region, profile)

    # -- data ------------------------------------------------------------------------------------------------
    @property
    def stats(self) -> Any:
        return self.state.stats

    @property
    def store(self) -> Any:
        return self.state.store

    def bucket_name(self, bucket: str) -> str:
        return self.state.full_bucket(bucket)

    def create_bucket(self, bucket: str) -> str:
        """Create a bucket (``-<appid>`` appended when missing); returns the full name."""
        full = self.state.full_bucket(bucket)
        self.state.store.create_bucket(full)
        return full

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ObjectRecord:
        return self.state.store.put(self.state.full_bucket(bucket), key, data, content_type, metadata)

    def get_object(self, bucket: str, key: str) -> ObjectRecord | None:
        return self.state.store.get(self.state.full_bucket(bucket), key)

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        full = self.state.full_bucket(bucket)
        keys: list[str] = []
        marker = ""
        while True:
            res = self.state.store.list(full, prefix=prefix, marker=marker, max_keys=1000)
            keys.extend(r.key for r in res.contents)
            if not res.is_truncated:
                return keys
            marker = res.next_marker

    def reset(self) -> None:
        """Forget objects (buckets stay), jobs, callbacks, stats and faults."""
        self._run(self.state.reset)

    def set_faults(self, faults: FaultConfig | dict[str, Any] | None) -> None:
        if isinstance(faults, dict):
            faults = FaultConfig.from_dict(faults)
        self.state.faults.set(faults)

    def set_rate_limit(
        self,
        rate: float | None,
        burst: float | None = None,
        families: Iterable[str] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Throttle each (bucket, operation family) to ``rate`` requests/s (token bucket of ``burst``); above it
        COS/CI answer 503 SlowDown and API 3.0 RequestLimitExceeded. ``None`` removes the limit. ``clock`` (seconds,
        monotonic) lets tests refill buckets without waiting. Other fault settings are kept."""
        if clock is not None:
            self.state.faults.clock = clock
        limit = None if rate is None else RateLimit(rate, burst, tuple(families) if families is not None else None)
        self.state.faults.set(dataclasses.replace(self.state.faults.config, rate_limit=limit))

    def set_latency(self, median: float | None, sigma: float = 0.5, cap: float | None = None, seed: int = 0) -> None:
        """Delay every answer by a seeded log-normal draw around ``median`` seconds (``None``: no distribution)."""
        model = None if median is None else LatencyModel(median, sigma, cap, seed)
        self.state.faults.set(dataclasses.replace(self.state.faults.config, latency_model=model))

    # -- job control (the job engine lives on the server loop) -----------------------------------------------
    def set_job_timing(self, queue_seconds: float, run_seconds: float) -> None:
        self._run(self.state.jobs.set_timing, queue_seconds, run_seconds)

    def force_job_outcome(self, job_id: str, state: str, code: str | None = None, message: str | None = None) -> None:
        self._run(self.state.jobs.force_outcome, job_id, state, code=code, message=message)

    def pause_job(self, job_id: str) -> None:
        self._run(self.state.jobs.pause, job_id)

    def resume_job(self, job_id: str) -> None:
        self._run(self.state.jobs.resume, job_id)

    def set_callback_variants(
        self, json_content_type: str = "application/json", jobs_detail: str = "list", seed: int = 0
    ) -> None:
        """How JSON callbacks look: Content-Type application/json or application/xml, JobsDetail as a list or one
        object; "random" draws either per callback from a stream seeded by ``seed``. ``reset()`` restores defaults."""
        self.state.jobs.set_callback_variants(CallbackVariants(json_content_type, jobs_detail, seed))

    def start_workflow_job(
        self, bucket: str, request: dict[str, Any], workflow_name: str = DEFAULT_WORKFLOW_NAME
    ) -> dict[str, Any]:
        """Start a job as a workflow would (a ``<Workflow>`` node; TaskFinish then WorkflowFinish callbacks).
        ``request`` is a SubmitJob request dict, checked like ``POST /jobs``; returns its JobsDetail."""
        full = self.state.full_bucket(bucket)
        return dict(self._run(start_workflow_job, self.state, full, request, workflow_name))

    @property
    def jobs(self) -> list[Any]:
        return list(self._run(self.state.jobs.list_jobs))

    @property
    def callbacks_sent(self) -> list[Any]:
        return list(self.state.jobs.callbacks_sent)
