"""A loopback HTTP receiver that records each request as it arrived: request line, headers, framing, body.

The live smoke uses it to see how CI delivers a job callback (a public URL forwards to it); the encoding check
uses it as a recording proxy in front of the hooks. HTTP parsing is h11's; nothing here answers anything but an
empty 200, and it binds to 127.0.0.1 only.
"""

from __future__ import annotations

import queue
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from types import TracebackType

import h11

MAX_BODY = 1024 * 1024
READ_TIMEOUT = 30.0


@dataclass
class CapturedRequest:
    method: str
    target: str
    http_version: str
    headers: list[tuple[str, str]]  # as sent: original name casing and order
    body: bytes = b""
    data_events: int = 0  # how many pieces h11 handed over (chunks for chunked framing)
    complete: bool = False  # False: the connection ended (or the body overflowed) before the end of the message

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def framing(self) -> str:
        """``chunked``, ``Content-Length: N`` or ``none`` (what the sender declared; h11 enforced it)."""
        encoding = self.header("Transfer-Encoding")
        if encoding and "chunked" in encoding.lower():
            return "chunked"
        length = self.header("Content-Length")
        return f"Content-Length: {length}" if length is not None else "none"

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target} HTTP/{self.http_version}"


def _read_request(sock: socket.socket) -> CapturedRequest | None:
    conn = h11.Connection(h11.SERVER)
    captured: CapturedRequest | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return captured
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(65536)
            except OSError:
                return captured
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            captured = CapturedRequest(
                method=event.method.decode("ascii", "replace"),
                target=event.target.decode("ascii", "replace"),
                http_version=event.http_version.decode("ascii", "replace"),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers.raw_items()],
            )
        elif isinstance(event, h11.Data) and captured is not None:
            captured.data_events += 1
            body += event.data
            if len(body) > MAX_BODY:
                captured.body = bytes(body[:MAX_BODY])
                return captured
        elif isinstance(event, h11.EndOfMessage) and captured is not None:
            captured.body = bytes(body)
            captured.complete = True
            sock.sendall(conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")])) or b"")
            sock.sendall(conn.send(h11.EndOfMessage()) or b"")
            return captured
        else:  # ConnectionClosed, or data before a request line
            return captured


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.request.settimeout(READ_TIMEOUT)
        captured = _read_request(self.request)
        if captured is not None:
            self.server.captured.put(captured)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        self.captured: queue.Queue[CapturedRequest] = queue.Queue()
        super().__init__(("127.0.0.1", port), _Handler)


@dataclass
class Receiver:
    """``with Receiver(port) as rx:`` serves on 127.0.0.1:port (0: any free port) until the block ends."""

    port: int = 0
    _server: _Server | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Receiver:
        self._server = _Server(self.port)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="live-capture", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def next_request(self, timeout: float) -> CapturedRequest | None:
        assert self._server is not None, "use the Receiver as a context manager"
        try:
            return self._server.captured.get(timeout=timeout)
        except queue.Empty:
            return None
