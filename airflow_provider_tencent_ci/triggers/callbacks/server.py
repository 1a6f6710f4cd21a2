"""The in-triggerer callback receiver: h11 (the HTTP/1.1 parser httpx and uvicorn use) on asyncio sockets.

h11 does the HTTP; :func:`core.handle_callback` does the callback rules. This module only adds what protects the
process that runs it (a triggerer shares its descriptors and its loop with every trigger):

- at most ``max_connections`` open connections: beyond that the server stops accepting, so further clients wait in
  the kernel's listen backlog (and are refused by the kernel when it is full) instead of using descriptors;
- per client address, connections beyond ``max_per_client`` open ones are on probation: one that has sent nothing
  within ``probation_seconds`` is closed, so one client's idle sockets cannot hold the slots for long. A burst of
  real callbacks from one address (a load balancer, CI's egress) sends its bytes at once and is served, where a
  hard per-client limit would refuse it;
- a header deadline (``header_timeout``, shorter than the body deadline): an idle or trickling connection is cut
  early (408);
- one request per connection (``Connection: close``), bounded header size (431);
- refusals and accept errors (e.g. EMFILE) are logged at most a few times a minute, and accepting backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from http import HTTPStatus
from urllib.parse import urlsplit

import h11

from airflow_provider_tencent_ci.triggers.callbacks.core import (
    CallbackRouter,
    ClientGone,
    Deadline,
    Limits,
    RateLimitedLog,
    handle_callback,
)

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 3.0
MAX_CONNECTIONS = 128
MAX_PER_CLIENT = 32
PROBATION_SECONDS = 1.0
MAX_HEADER_BYTES = 16 * 1024
_RECV_BYTES = 64 * 1024
_ACCEPT_BACKOFF_SECONDS = 0.1

_accept_errors = RateLimitedLog(log)
_refused = RateLimitedLog(log)
_failures = RateLimitedLog(log)


class H11Receiver:
    """Serves callbacks on a listening socket until cancelled; counts answers by status in ``responses``."""

    def __init__(
        self,
        router: CallbackRouter,
        limits: Limits,
        *,
        header_timeout: float = HEADER_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        probation_seconds: float = PROBATION_SECONDS,
        base_path: str = "",
    ) -> None:
        self.router = router
        self.limits = limits
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.probation_seconds = probation_seconds
        self.base_path = base_path
        self.responses: Counter[int] = Counter()
        self.refused_connections = 0
        self.open_connections = 0
        self.peak_connections = 0
        self._per_client: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()

    async def serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.max_connections)
        try:
            while True:
                await slots.acquire()
                try:
                    conn, address = await loop.sock_accept(sock)
                except OSError as err:  # EMFILE/ENFILE/ENOBUFS: wait instead of spinning (and logging) per retry
                    slots.release()
                    _accept_errors.warning("CI callback listener: cannot accept a connection now: %s", err)
                    await asyncio.sleep(_ACCEPT_BACKOFF_SECONDS)
                    continue
                client = str(address[0]) if isinstance(address, tuple) else str(address)
                self._per_client[client] += 1
                self.open_connections += 1
                self.peak_connections = max(self.peak_connections, self.open_connections)
                probation = self._per_client[client] > self.max_per_client
                task = loop.create_task(self._connection(conn, client, probation, slots))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _connection(self, conn: socket.socket, client: str, probation: bool, slots: asyncio.Semaphore) -> None:
        try:
            conn.setblocking(False)
            await self._exchange(conn, probation)
        except Exception:
            _failures.warning("CI callback listener: unexpected error", exc_info=True)
        finally:
            conn.close()
            self.open_connections -= 1
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]
            slots.release()

    async def _exchange(self, conn: socket.socket, probation: bool) -> None:
        loop = asyncio.get_running_loop()
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        if probation:
            first = b""
            with Deadline(self.probation_seconds) as probation_over:
                first = await loop.sock_recv(conn, _RECV_BYTES)
            if probation_over.expired:
                self.refused_connections += 1
                _refused.warning(
                    "CI callback listener: closed an idle connection (more than %d open from one client)",
                    self.max_per_client,
                )
                return
            http.receive_data(first)

        async def next_event() -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
            while True:
                event = http.next_event()
                if event is not h11.NEED_DATA:
                    return event
                http.receive_data(await loop.sock_recv(conn, _RECV_BYTES))

        async def read_body() -> bytes:
            try:
                event = await next_event()
            except (h11.RemoteProtocolError, ConnectionError):
                raise ClientGone() from None
            if isinstance(event, h11.Data):
                return bytes(event.data)
            if isinstance(event, h11.EndOfMessage):
                return b""
            raise ClientGone()

        request = None
        try:
            with Deadline(self.header_timeout) as deadline:
                request = await next_event()
        except h11.RemoteProtocolError as err:
            status = err.error_status_hint
        except ConnectionError:
            return
        else:
            if deadline.expired:
                status = 408
            elif not isinstance(request, h11.Request):
                return  # closed before a request
            else:
                try:
                    status = await handle_callback(
                        self.router,
                        request.method.decode("latin-1"),
                        urlsplit(request.target.decode("latin-1")).path,
                        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers],
                        read_body,
                        base_path=self.base_path,
                        limits=self.limits,
                    )
                except ClientGone:
                    return
        self.responses[status] += 1
        await self._answer(http, conn, status)

    async def _answer(self, http: h11.Connection, conn: socket.socket, status: int) -> None:
        reason = HTTPStatus(status).phrase
        payload = reason.encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(payload))), ("Connection", "close")]
        try:
            data = b"".join(
                http.send(event) or b""
                for event in (
                    h11.Response(status_code=status, reason=reason, headers=headers),
                    h11.Data(data=payload),
                    h11.EndOfMessage(),
                )
            )
        except h11.LocalProtocolError:
            return
        try:
            sent = conn.send(data)  # a short answer: almost always sent at once, without a wait
        except BlockingIOError:
            sent = 0
        except OSError:
            return
        if sent < len(data):
            with contextlib.suppress(OSError), Deadline(self.limits.body_timeout):
                await asyncio.get_running_loop().sock_sendall(conn, data[sent:])
