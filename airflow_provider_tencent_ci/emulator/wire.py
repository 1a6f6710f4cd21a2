"""ASGI plumbing shared by the service app and the control API: bounded body reading and plain replies."""

from __future__ import annotations

from typing import Any

# Bodies this small are read even when a request is refused before its body: uvicorn has usually buffered them
# already, and reading them lets the connection stay open for the client's next request.
DRAIN_LIMIT = 64 * 1024


class BodyTooLarge(Exception):
    """The declared or streamed body exceeds the limit; nothing beyond the limit was read."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"request body exceeds {limit} bytes" + (f" (Content-Length {declared})" if declared else ""))
        self.limit = limit
        self.declared = declared


def declared_length(headers: dict[str, str]) -> int | None:
    """The Content-Length header as an int (None when absent; h11 has already refused malformed values)."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value.split(",")[0])
    except ValueError:
        return None


def check_declared(headers: dict[str, str], limit: int) -> None:
    """Refuse a body by its Content-Length alone, before any of it is read."""
    n = declared_length(headers)
    if n is not None and n > limit:
        raise BodyTooLarge(limit, n)


async def read_body(receive: Any, limit: int) -> bytes:
    """The whole request body, or BodyTooLarge as soon as more than ``limit`` bytes arrived (chunked bodies too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)


async def drain_small_body(receive: Any, headers: dict[str, str]) -> bool:
    """Read and drop a refused request's body when it is small (see DRAIN_LIMIT); larger bodies stay unread.

    Returns True when a body remains unread: the answer must then close the connection (``Connection: close``),
    or the server would go on receiving, and dropping, the rest of it.
    """
    n = declared_length(headers)
    if n is None:
        return "transfer-encoding" in headers  # a chunked body of unknown size: never read it
    if n == 0:
        return False
    if n > DRAIN_LIMIT:
        return True
    try:
        await read_body(receive, DRAIN_LIMIT)
    except BodyTooLarge:
        return True
    return False


async def send_plain(
    send: Any, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("utf-8")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestBody:
    """A request's body, read at most once and only on demand (after the request is authenticated)."""

    def __init__(self, receive: Any, headers: dict[str, str]) -> None:
        self.receive = receive
        self.headers = headers
        self.consumed = False
        self.cut = False  # reading stopped at the limit: the rest is still on the wire

    async def read(self, limit: int) -> bytes:
        check_declared(self.headers, limit)
        self.consumed = True
        try:
            return await read_body(self.receive, limit)
        except BodyTooLarge:
            self.cut = True
            raise

    async def finish(self) -> bool:
        """Before answering: drop a small unread body so the connection can be reused. True when a large body
        stays unread, so the answer must close the connection."""
        if self.consumed:
            return self.cut
        self.consumed = True
        return await drain_small_body(self.receive, self.headers)
