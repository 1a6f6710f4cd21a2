"""The transport-independent core of a callback receiver: one request in, one HTTP status out.

A receiver (the in-triggerer h11 server, or an ASGI app on the API server) hands :func:`handle_callback` the
method, the path, the raw header pairs and a ``read`` coroutine that returns the next body chunk (``b""`` at the
end, :class:`ClientGone` if the client left); the core applies every rule and answers with a status code. (An ASGI
adapter passes ``scope["method"]``, ``scope["path"]``, the decoded ``scope["headers"]`` and a ``read`` that returns
each ``http.request`` message's body, then ``b""`` after the one without ``more_body``.)

405 not POST; 411 chunked or no Content-Length (CI sends a length; a chunked body could not be capped before it is
read); 400 several differing Content-Length values or one that is not digits (RFC 9110 8.6 and 9112 6.3: ``+5`` is
not a length); 413 over the size cap; 404 a path that is not ``/<token>`` or ``<base path>/<token>``, or a token
without a valid MAC; 408 the body did not arrive before the deadline; 400 a body that does not parse; then the
:class:`CallbackSink` answers: 200 once the callback is routed (stored in the shared relay when one is configured,
else delivered to the local triggers waiting on the token or buffered until one starts), 503 when the relay could
not store it (CI retries). Refused bodies of moderate size are read and discarded within the same deadline, so the
client reads the answer rather than a reset.

:class:`CallbackRouter` holds the registrations and the early buffer; it is thread-safe (triggers register from
their loop, the receiver delivers from its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_tencent_ci.triggers.callback_relay import CallbackRelayError
from airflow_provider_tencent_ci.triggers.callbacks.parsing import CallbackMessage, CallbackParseError, parse_callback
from airflow_provider_tencent_ci.triggers.callbacks.tokens import verify_token

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # a JobsDetail is a few KB; anything near a MiB is not CI
# The whole-body deadline of every receiver (in-triggerer listener and API-server app): a JobsDetail is a few KB,
# so a body slower than this is a client that is not CI.
READ_TIMEOUT_SECONDS = 10.0
EARLY_TTL_SECONDS = 3600.0
EARLY_MAX_TOKENS = 10_000
# Early callbacks are only held until their trigger starts; a flood to unknown tokens must not grow memory. The
# cap is on the parsed messages' estimated size (CallbackMessage.cost), not on body bytes.
EARLY_MAX_BYTES = 16 * 1024 * 1024
EARLY_MAX_PER_TOKEN = 10
# Refused bodies up to this multiple of the cap are drained (within the deadline) before the answer.
_DRAIN_FACTOR = 4
_LENGTH_RE = re.compile(r"^[0-9]{1,18}$")

BodyReader = Callable[[], Awaitable[bytes]]


class Inbox(Protocol):
    """Where a trigger receives its callbacks (a ``Mailbox``, or an ``asyncio.Queue``): only ``put_nowait``."""

    def put_nowait(self, item: Any) -> None: ...


class Publisher(Protocol):
    """The shared relay as a receiver sees it (``callback_relay.CallbackRelay``)."""

    async def publish(self, token: str, body: bytes, content_type: str) -> None: ...


class CallbackSink(Protocol):
    """What a receiver does with a valid, parsed callback; returns the HTTP status to answer."""

    async def accept(self, token: str, body: bytes, content_type: str, message: CallbackMessage) -> int: ...


async def publish_or_503(relay: Publisher, token: str, body: bytes, content_type: str) -> int:
    """Hand a callback to the relay: 200 once it is stored, 503 when it is not (so that CI retries)."""
    try:
        await relay.publish(token, body, content_type)
    except CallbackRelayError as err:
        _refusals.warning("CI callback receiver: %s; answering 503 so that CI retries", err)
        return 503
    return 200


class ClientGone(Exception):
    """The client closed the connection before its body was complete: there is nobody to answer."""


class RateLimitedLog:
    """At most ``burst`` lines per ``interval`` seconds; the next line after a quiet spell says how many were
    suppressed (a flood of bad requests must not become a flood of log lines)."""

    def __init__(self, logger: logging.Logger, burst: int = 5, interval: float = 60.0) -> None:
        self._log, self._burst, self._interval = logger, burst, interval
        self._window_start = 0.0
        self._count = 0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, msg: str, *args: object, exc_info: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self._interval:
                self._window_start, self._count = now, 0
            self._count += 1
            if self._count > self._burst:
                self._suppressed += 1
                return
            suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._log.warning(msg, *args, exc_info=exc_info)


_refusals = RateLimitedLog(log)


@dataclass(eq=False)
class Registration:
    """A trigger's interest in a token; messages arrive in ``inbox`` as ``("callback", CallbackMessage)``."""

    router: CallbackRouter
    token: str
    loop: asyncio.AbstractEventLoop
    inbox: Inbox

    def deliver(self, message: CallbackMessage) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, ("callback", message))
            return True
        except RuntimeError:  # the trigger's loop is closed: it is gone
            return False

    def close(self) -> None:
        self.router.unregister(self)


class CallbackRouter:
    """Registrations by token, and the bounded buffer of callbacks that arrive before their trigger.

    With a ``relay`` (a :class:`Publisher`), a received callback is only published there: every triggerer's relay
    subscriber then hands it to :meth:`deliver_local` of the process holding the token, and Redis (not this
    process's early buffer) keeps it for a trigger that registers later.
    """

    def __init__(
        self,
        *,
        early_ttl: float = EARLY_TTL_SECONDS,
        early_max_tokens: int = EARLY_MAX_TOKENS,
        early_max_bytes: int = EARLY_MAX_BYTES,
        relay: Publisher | None = None,
    ) -> None:
        self.relay = relay
        self.early_ttl = early_ttl
        self.early_max_tokens = early_max_tokens
        self.early_max_bytes = early_max_bytes
        self.early_bytes = 0  # estimated memory of the buffered messages
        self.early: OrderedDict[str, list[CallbackMessage]] = OrderedDict()
        self.delivered = 0
        self.buffered = 0
        self._lock = threading.Lock()
        self._registrations: dict[str, set[Registration]] = {}

    def register(self, token: str, inbox: Inbox) -> Registration:
        """Register the running loop's ``inbox`` for a token; buffered early callbacks are delivered at once."""
        reg = Registration(self, token, asyncio.get_running_loop(), inbox)
        with self._lock:
            self._registrations.setdefault(token, set()).add(reg)
            early = self.early.pop(token, [])
            self.early_bytes -= sum(m.cost for m in early)
        now = time.time()
        for message in early:
            if now - message.received_at <= self.early_ttl:
                reg.deliver(message)
        return reg

    def unregister(self, reg: Registration) -> None:
        with self._lock:
            regs = self._registrations.get(reg.token)
            if regs is not None:
                regs.discard(reg)
                if not regs:
                    del self._registrations[reg.token]

    def holds(self, token: str) -> bool:
        with self._lock:
            return token in self._registrations

    def tokens(self) -> list[str]:
        """The tokens some trigger of this process waits on."""
        with self._lock:
            return list(self._registrations)

    async def accept(self, token: str, body: bytes, content_type: str, message: CallbackMessage) -> int:
        """A receiver's callback: to the relay when there is one (200 stored / 503 not), else routed locally."""
        if self.relay is not None:
            return await publish_or_503(self.relay, token, body, content_type)
        self.dispatch(token, message)
        return 200

    def deliver_local(self, token: str, message: CallbackMessage) -> bool:
        """Wake this process's triggers of the token (a relayed callback); False when none is here. Nothing is
        buffered: the relay keeps the callback for a trigger that registers later."""
        with self._lock:
            regs = list(self._registrations.get(token, ()))
        return self._wake(regs, message)

    def dispatch(self, token: str, message: CallbackMessage) -> None:
        with self._lock:
            regs = list(self._registrations.get(token, ()))
            if not regs:
                self._buffer(token, message)
                return
        if not self._wake(regs, message):
            with self._lock:
                self._buffer(token, message)

    def _wake(self, regs: list[Registration], message: CallbackMessage) -> bool:
        """Hand the message to each registration (dropping those whose trigger is gone); True if one took it."""
        delivered = False
        for reg in regs:
            if reg.deliver(message):
                delivered = True
            else:
                self.unregister(reg)
        if delivered:
            self.delivered += 1
        return delivered

    def _buffer(self, token: str, message: CallbackMessage) -> None:
        # Called with the lock held. Expire old entries, then cap tokens, messages per token and estimated bytes,
        # dropping the oldest first: the fallback poll still finds any job whose callback is dropped here.
        now = time.time()
        for old in [t for t, msgs in self.early.items() if now - msgs[-1].received_at > self.early_ttl]:
            self._drop_early(old)
        messages = self.early.setdefault(token, [])
        messages.append(message)
        self.early_bytes += message.cost
        self.early.move_to_end(token)
        while len(messages) > EARLY_MAX_PER_TOKEN:
            self.early_bytes -= messages.pop(0).cost
        while self.early and (len(self.early) > self.early_max_tokens or self.early_bytes > self.early_max_bytes):
            self._drop_early(next(iter(self.early)))
        self.buffered += 1

    def _drop_early(self, token: str) -> None:
        self.early_bytes -= sum(m.cost for m in self.early.pop(token, []))


class Deadline:
    """Cancel the current task after ``seconds`` (a timer, not a task per wait: cheap on the hot path).

    ``with Deadline(s) as d: ...`` swallows the cancellation it caused; ``d.expired`` says whether it did.
    """

    def __init__(self, seconds: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self.expired = False
        self._timer = asyncio.get_running_loop().call_later(max(0.0, seconds), self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        self._timer.cancel()
        if exc_type is asyncio.CancelledError and self.expired:
            uncancel = getattr(self._task, "uncancel", None)  # Python >= 3.11
            if uncancel is not None:
                uncancel()
            return True
        return False


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout: float = READ_TIMEOUT_SECONDS


def token_from_path(path: str, base_path: str) -> str | None:
    """The token of a request path: only ``/<token>`` or ``<base_path>/<token>``; anything else is None."""
    for prefix in {"", base_path.rstrip("/")}:
        if path.startswith(prefix + "/"):
            token = path[len(prefix) + 1 :]
            if token and "/" not in token:
                return token
    return None


class _FramingRefused(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


def _content_length(headers: Iterable[tuple[str, str]]) -> tuple[int, str]:
    """The declared body length and Content-Type. :raises _FramingRefused: chunked, no length, differing or
    malformed lengths."""
    lengths: set[str] = set()
    content_type = ""
    for name, value in headers:
        name = name.lower()
        if name == "content-type":
            content_type = value.strip()[:200]
        if name == "transfer-encoding":
            raise _FramingRefused(411)
        if name == "content-length":
            lengths.update(v.strip() for v in value.split(","))
    if not lengths:
        raise _FramingRefused(411)
    (length,) = lengths if len(lengths) == 1 else ("",)
    if not _LENGTH_RE.match(length):
        raise _FramingRefused(400)
    return int(length), content_type


async def _read_body(read: BodyReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await read()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise CallbackParseError("the body is longer than its Content-Length")
        chunks.append(chunk)


async def _discard(read: BodyReader, length: int, limits: Limits) -> None:
    """Read and drop a refused body of moderate size within the deadline (best effort)."""

    async def drain() -> None:
        with contextlib.suppress(ClientGone):
            while await read():
                pass

    if length <= _DRAIN_FACTOR * limits.max_body_bytes:
        with Deadline(limits.body_timeout):
            await drain()


async def handle_callback(
    sink: CallbackSink,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]],
    read: BodyReader,
    *,
    base_path: str = "",
    limits: Limits = Limits(),
) -> int:
    """Apply every rule to one request and hand it to ``sink`` (a :class:`CallbackRouter`, or the API-server
    receiver's relay sink); returns the HTTP status to answer.

    :raises ClientGone: the client left mid-body (nothing to answer).
    """
    if method.upper() != "POST":
        return 405
    try:
        length, content_type = _content_length(headers)
    except _FramingRefused as refused:
        return refused.status
    token = token_from_path(path, base_path)
    if length > limits.max_body_bytes or token is None or not verify_token(token):
        await _discard(read, length, limits)
        return 413 if length > limits.max_body_bytes else 404
    body = b""
    try:
        with Deadline(limits.body_timeout) as deadline:
            body = await _read_body(read, length)
    except CallbackParseError:
        return 400
    if deadline.expired:
        return 408
    if len(body) < length:
        raise ClientGone()
    try:
        message = parse_callback(body)
    except CallbackParseError as err:
        _refusals.warning("CI callback listener: malformed callback refused: %.200s", err)
        return 400
    return await sink.accept(token, body, content_type, message)
