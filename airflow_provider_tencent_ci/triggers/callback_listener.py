"""A per-process HTTP listener for CI job callbacks, shared by every callback trigger of a triggerer.

CI POSTs a job's JobsDetail to the job's CallBack URL when it finishes. The operator sets that URL to
``<callback_base_url>/<token>``; the listener routes a request to the trigger(s) registered for its token.

Trust model: CI callbacks are not signed, so a callback only *wakes* its trigger; the trigger confirms the
job's state with one query before it yields anything (a forged or replayed callback cannot succeed a task).

Tokens: ``token = nonce`` or, when a key is configured, ``nonce + "." + HMAC-SHA256(key, nonce)`` (truncated,
url-safe). The trigger's kwargs hold only the nonce; the full token (the bearer secret of the URL) is derived where
needed, and with a key the listener can refuse forged tokens without keeping any state. The key is
``[tencent_ci] callback_token_key``, else ``[core] fernet_key``; with neither, the token is the random nonce itself
(it then also sits in the trigger kwargs, which Airflow stores encrypted; it is not a Tencent credential).
Event-trigger channels use ``channel_token(name)`` (``ch-<name>.<mac>``) so a CI queue's callback URL can be
configured once.

The listener runs its own asyncio loop in a daemon thread: it outlives any one trigger's loop (``dag.test()`` runs
each trigger in a fresh ``asyncio.run()``), a blocked triggerer loop cannot stall CI's requests, and delivery to a
trigger is a thread-safe ``loop.call_soon_threadsafe(inbox.put_nowait, ...)``.

Robustness: bounded request line/headers/body, a read deadline, 4xx for anything malformed, and one bad request
never affects the next. Callbacks for tokens nobody waits for yet are buffered for a TTL (a callback can arrive
before its trigger starts: CI is fast, the triggerer may be busy or restarting).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_tencent_ci.constants import CALLBACK_EVENT_TASK_FINISH
from airflow_provider_tencent_ci.validation import check_name

log = logging.getLogger(__name__)

CONFIG_SECTION = "tencent_ci"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8799
MAX_BODY_BYTES = 1024 * 1024  # a JobsDetail is a few KB; anything near a MiB is not CI
READ_TIMEOUT_SECONDS = 10.0
MAX_HEADER_LINES = 100
LINE_LIMIT = 16 * 1024
EARLY_TTL_SECONDS = 3600.0
EARLY_MAX_TOKENS = 10_000
# Early callbacks are only held until their trigger starts; a flood to unknown tokens must not grow memory.
EARLY_MAX_BYTES = 16 * 1024 * 1024
EARLY_MAX_PER_TOKEN = 10
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.]{16,200}$")
_MAC_LEN = 32


def _conf_get(key: str, fallback: str) -> str:
    try:
        from airflow.configuration import conf

        value = conf.get(CONFIG_SECTION, key, fallback=fallback)
    except Exception:
        value = fallback
    return fallback if value is None else str(value)


# -- tokens ------------------------------------------------------------------------------------------------
def _token_key() -> bytes | None:
    key = _conf_get("callback_token_key", "")
    if not key:
        try:
            from airflow.configuration import conf

            key = conf.get("core", "fernet_key", fallback="") or ""
        except Exception:
            key = ""
    return key.encode() if key else None


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, f"tencent-ci-callback:{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:_MAC_LEN]


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def token_for_nonce(nonce: str) -> str:
    """The URL token for a job's nonce (the nonce alone when no key is configured)."""
    key = _token_key()
    return f"{nonce}.{_mac(key, nonce)}" if key else nonce


def channel_token(channel: str) -> str:
    """The token of a named channel (event triggers; configure its URL as a CI queue's callback)."""
    name = f"ch-{check_name('channel', channel)}"
    key = _token_key()
    return f"{name}.{_mac(key, name)}" if key else f"{name}-{'0' * 16}"


def verify_token(token: str) -> bool:
    """True when a token is well formed and, if a key is configured, carries a valid MAC."""
    if not _TOKEN_RE.match(token):
        return False
    key = _token_key()
    if key is None:
        return True
    nonce, sep, mac = token.rpartition(".")
    return bool(sep) and hmac.compare_digest(mac, _mac(key, nonce))


def callback_base_url() -> str:
    base = _conf_get("callback_base_url", "")
    if not base:
        host = _conf_get("callback_listener_host", DEFAULT_HOST)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        port = _conf_get("callback_listener_port", str(DEFAULT_PORT))
        base = f"http://{host}:{port}"
    return base.rstrip("/")


def callback_url(token: str) -> str:
    return f"{callback_base_url()}/{token}"


# -- parsing ------------------------------------------------------------------------------------------------
class CallbackParseError(ValueError):
    pass


@dataclass
class CallbackMessage:
    """One parsed callback: the event name and the JobsDetail entries (all scalars as strings)."""

    event_name: str
    jobs: list[dict[str, Any]]
    fmt: str
    size: int = 0  # bytes of the body it came from: what buffering it costs
    received_at: float = field(default_factory=time.time)

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [j for j in self.jobs if j.get("JobId") == job_id]


def _stringify(value: Any) -> Any:
    """JSON callbacks may carry numbers as numbers or strings; normalise every scalar to str like the XML API."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element_to_obj(elem: Any) -> Any:
    children = list(elem)
    if not children:
        return (elem.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _element_to_obj(child)
        if child.tag in out:
            if not isinstance(out[child.tag], list):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = value
    return out


def parse_callback(body: bytes, content_type: str = "") -> CallbackMessage:
    """Parse a CI callback body (XML by default, JSON with CallBackFormat=JSON)."""
    text = body.strip()
    if not text:
        raise CallbackParseError("empty body")
    ctype = content_type.lower()
    is_json = "json" in ctype or (text[:1] in (b"{", b"[") and "xml" not in ctype)
    if is_json:
        try:
            doc = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            raise CallbackParseError(f"invalid JSON: {err}") from None
        if isinstance(doc, dict) and isinstance(doc.get("Response"), dict):
            doc = doc["Response"]
        if not isinstance(doc, dict):
            raise CallbackParseError("JSON callback must be an object")
        fmt = "JSON"
    else:
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException

        try:
            root = ElementTree.fromstring(text)
        except (ElementTree.ParseError, DefusedXmlException, ValueError) as err:
            raise CallbackParseError(f"invalid XML: {err}") from None
        if root.tag != "Response":
            raise CallbackParseError(f"unexpected XML root {root.tag!r}")
        doc = _element_to_obj(root)
        if not isinstance(doc, dict):
            raise CallbackParseError("empty XML Response")
        fmt = "XML"
    details = doc.get("JobsDetail")
    if isinstance(details, dict):
        details = [details]
    if not isinstance(details, list) or not details:
        raise CallbackParseError("no JobsDetail")
    jobs: list[dict[str, Any]] = []
    for detail in details:
        if not isinstance(detail, dict):
            raise CallbackParseError("JobsDetail entries must be objects")
        detail = _stringify(detail)
        if not detail.get("JobId") or not detail.get("State"):
            raise CallbackParseError("JobsDetail without JobId or State")
        jobs.append(detail)
    event_name = doc.get("EventName") or CALLBACK_EVENT_TASK_FINISH
    if not isinstance(event_name, (str, int)):
        raise CallbackParseError("EventName must be a string")
    return CallbackMessage(event_name=str(event_name), jobs=jobs, fmt=fmt, size=len(body))


# -- the listener ---------------------------------------------------------------------------------------------
class _HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


@dataclass(eq=False)
class Registration:
    """A trigger's interest in a token; messages arrive in ``inbox`` as ``("callback", CallbackMessage)``."""

    listener: CallbackListener
    token: str
    loop: asyncio.AbstractEventLoop
    inbox: asyncio.Queue

    def deliver(self, message: CallbackMessage) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, ("callback", message))
            return True
        except RuntimeError:  # the trigger's loop is closed: it is gone
            return False

    def close(self) -> None:
        self.listener.unregister(self)


class CallbackListener:
    """The HTTP server; use :func:`get_listener` for the process-wide instance."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        early_ttl: float = EARLY_TTL_SECONDS,
        early_max_tokens: int = EARLY_MAX_TOKENS,
        early_max_bytes: int = EARLY_MAX_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.early_ttl = early_ttl
        self.early_max_tokens = early_max_tokens
        self.early_max_bytes = early_max_bytes
        self._early_bytes = 0
        self._lock = threading.Lock()
        self._registrations: dict[str, set[Registration]] = {}
        self._early: OrderedDict[str, list[CallbackMessage]] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        # Counters (tests, diagnostics): status code -> count, and messages delivered/buffered.
        self.responses: dict[int, int] = {}
        self.delivered = 0
        self.buffered = 0

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> CallbackListener:
        self._thread = threading.Thread(target=self._thread_main, name="tencent-ci-callback-listener", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise OSError("callback listener did not start in time")
        if self._start_error is not None:
            raise OSError(f"callback listener could not bind {self.host}:{self.port}: {self._start_error}")
        return self

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, limit=LINE_LIMIT)
            )
            sock = self._server.sockets[0]
            self.port = sock.getsockname()[1]
        except BaseException as err:
            self._start_error = err
            self._ready.set()
            loop.close()
            return
        log.info("CI callback listener serving on %s:%s", self.host, self.port)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or loop.is_closed():
            return

        async def _close() -> None:
            server.close()
            await server.wait_closed()
            loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(_close(), loop)
        except RuntimeError:
            return
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._start_error is None

    # -- routing --------------------------------------------------------------------------------------------
    def register(self, token: str, inbox: asyncio.Queue) -> Registration:
        """Register the running loop's ``inbox`` for a token; buffered early callbacks are delivered at once."""
        reg = Registration(self, token, asyncio.get_running_loop(), inbox)
        with self._lock:
            self._registrations.setdefault(token, set()).add(reg)
            early = self._early.pop(token, [])
            self._early_bytes -= sum(m.size for m in early)
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

    def _dispatch(self, token: str, message: CallbackMessage) -> None:
        with self._lock:
            regs = list(self._registrations.get(token, ()))
            if not regs:
                self._buffer(token, message)
                return
        delivered = False
        for reg in regs:
            if reg.deliver(message):
                delivered = True
            else:
                self.unregister(reg)
        if delivered:
            self.delivered += 1
        else:
            with self._lock:
                self._buffer(token, message)

    def _buffer(self, token: str, message: CallbackMessage) -> None:
        # Called with the lock held. Expire old entries, then cap tokens, messages per token and bytes, dropping
        # the oldest first: the fallback poll still finds any job whose callback is dropped here.
        now = time.time()
        for old in [t for t, msgs in self._early.items() if now - msgs[-1].received_at > self.early_ttl]:
            self._drop_early(old)
        messages = self._early.setdefault(token, [])
        messages.append(message)
        self._early_bytes += message.size
        self._early.move_to_end(token)
        while len(messages) > EARLY_MAX_PER_TOKEN:
            self._early_bytes -= messages.pop(0).size
        while self._early and (len(self._early) > self.early_max_tokens or self._early_bytes > self.early_max_bytes):
            self._drop_early(next(iter(self._early)))
        self.buffered += 1

    def _drop_early(self, token: str) -> None:
        self._early_bytes -= sum(m.size for m in self._early.pop(token, []))

    # -- HTTP -----------------------------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status = 500
        try:
            try:
                method, path, headers, body = await asyncio.wait_for(
                    self._read_request(reader), timeout=self.read_timeout
                )
                status = self._process(method, path, headers, body)
            except _HttpError as err:
                status = err.status
            except asyncio.TimeoutError:
                status = 408
            except (asyncio.IncompleteReadError, ConnectionError):
                return  # the client went away; nothing to answer
            except asyncio.LimitOverrunError:
                status = 431
            except ValueError:  # StreamReader raises it for over-long lines
                status = 431
            except Exception:
                log.exception("CI callback listener: unexpected error")
                status = 500
            self.responses[status] = self.responses.get(status, 0) + 1
            reason = _REASONS.get(status, "Error")
            payload = reason.encode()
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(payload)}\r\n"
                f"Connection: close\r\n\r\n".encode()
                + payload
            )
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(writer.drain(), timeout=self.read_timeout)
        finally:
            writer.close()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _HttpError(400, "bad request line")
        method, target = parts[0].upper(), parts[1]
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES + 1):
            line = (await reader.readline()).decode("latin-1")
            if not line.endswith("\n"):
                raise asyncio.IncompleteReadError(line.encode(), None)
            line = line.strip()
            if not line:
                break
            name, sep, value = line.partition(":")
            if not sep:
                raise _HttpError(400, "bad header")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _HttpError(431, "too many headers")
        if method != "POST":
            raise _HttpError(405, "POST only")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _HttpError(411, "chunked bodies are not accepted")
        length_header = headers.get("content-length")
        if length_header is None:
            raise _HttpError(411, "Content-Length required")
        try:
            length = int(length_header)
        except ValueError:
            raise _HttpError(400, "bad Content-Length") from None
        if length < 0:
            raise _HttpError(400, "bad Content-Length")
        if length > self.max_body_bytes:
            # Discard a moderately oversized body first, so the client reads our 413 instead of a reset.
            if length <= 4 * self.max_body_bytes:
                remaining = length
                while remaining > 0:
                    chunk = await reader.read(min(remaining, 64 * 1024))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            raise _HttpError(413, "body too large")
        body = await reader.readexactly(length)
        return method, urlsplit(target).path, headers, body

    def _process(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        token = path.rstrip("/").rsplit("/", 1)[-1]
        if not token or not verify_token(token):
            return 404
        try:
            message = parse_callback(body, headers.get("content-type", ""))
        except CallbackParseError as err:
            log.warning("CI callback listener: malformed callback refused: %s", err)
            return 400
        self._dispatch(token, message)
        return 200


_INSTANCE: CallbackListener | None = None
_INSTANCE_LOCK = threading.Lock()


def get_listener() -> CallbackListener:
    """The process-wide listener, started on first use from ``[tencent_ci] callback_listener_host/port``.

    Raises ``OSError`` when it cannot bind (e.g. another process holds the port): callers fall back to polling.
    Blocking for the bind: call it through ``asyncio.to_thread`` from a trigger.
    """
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is not None and _INSTANCE.running:
            return _INSTANCE
        host = _conf_get("callback_listener_host", DEFAULT_HOST) or DEFAULT_HOST
        try:
            port = int(_conf_get("callback_listener_port", str(DEFAULT_PORT)))
        except ValueError:
            port = DEFAULT_PORT
        _INSTANCE = CallbackListener(host, port).start()
        return _INSTANCE


def reset_listener() -> None:
    """Stop the process-wide listener (tests)."""
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is not None:
            _INSTANCE.stop()
        _INSTANCE = None
