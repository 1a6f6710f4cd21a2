"""The per-process CI callback listener, shared by every callback trigger of a triggerer.

CI POSTs a finished job's JobsDetail (or a workflow run's WorkflowExecution) to the job's CallBack URL, which the
operator sets to ``<callback_base_url>/<token>``; the listener routes the request to the trigger(s) registered for
the token. The pieces live in ``triggers/callbacks/`` (tokens, parsing, the transport-independent core, the h11
receiver); this module is the process-wide instance and keeps the public names importable from here.

Trust model: CI callbacks are not signed, so a callback only *wakes* its trigger; the trigger confirms the job's
state with one query before it yields anything (a forged or replayed callback cannot succeed a task). The URL token
is a MAC over a random nonce with a server-side key (``[tencent_ci] callback_token_key``, else ``[core]
fernet_key``); without a key there is no token and nothing is accepted (see ``callbacks/tokens.py``: trigger
kwargs, the nonce included, are stored in clear on Airflow 3.3.2).

The listener runs its own asyncio loop in a daemon thread: it outlives any one trigger's loop (``dag.test()`` runs
each trigger in a fresh ``asyncio.run()``, and a triggerer restarts its loop only with the process), a busy or
blocked triggerer loop cannot stall CI's requests, and delivery to a trigger is a thread-safe
``loop.call_soon_threadsafe(inbox.put_nowait, ...)``. Every provider trigger calls :func:`ensure_listener` from
``run()``, so the port serves from the moment the triggerer runs any of them.

Without a relay, callbacks for tokens nobody waits for yet are buffered for a TTL (CI is fast; the trigger may not
have started), and a callback reaching another triggerer only wakes its task at the fallback poll.

With the shared relay (``[tencent_ci] callback_relay_conn_id`` / ``callback_relay_url``, ``callback_relay.py``):
this process subscribes once (:func:`ensure_listener` starts the subscriber before the port serves); a callback
this listener receives is published to the relay (200 once stored, 503 when not, so CI retries) instead of being
routed here; every relayed callback is handed only to this process's registrations of its token
(:meth:`CallbackRouter.deliver_local`, no early buffer: Redis keeps it with a TTL); a trigger registering here
takes the callbacks stored for its token (:meth:`CallbackListener.listen`), and after every (re)subscription the
subscriber re-checks them for every local token. When the port cannot be bound (another triggerer on the host
holds it), callbacks still arrive through the relay from the receiver that got them (e.g. the API server's).

A failed bind is retried in the listener's thread with backoff (``BIND_RETRY_SECONDS`` doubling up to
``BIND_RETRY_MAX_SECONDS``) until it succeeds, without restarting the triggerer: a port held by a process that is
shutting down (a rolling restart) serves again once it is freed. One warning per failure streak, one line when it
binds; triggers register meanwhile and wake through the relay or their fallback poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

from airflow_provider_tencent_ci.triggers import callback_relay
from airflow_provider_tencent_ci.triggers.callbacks.core import (
    EARLY_MAX_BYTES,
    EARLY_MAX_PER_TOKEN,
    EARLY_MAX_TOKENS,
    EARLY_TTL_SECONDS,
    MAX_BODY_BYTES,
    READ_TIMEOUT_SECONDS,
    CallbackRouter,
    Inbox,
    Limits,
    RateLimitedLog,
    Registration,
    handle_callback,
)
from airflow_provider_tencent_ci.triggers.callbacks.parsing import CallbackMessage, CallbackParseError, parse_callback
from airflow_provider_tencent_ci.triggers.callbacks.server import (
    HEADER_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    MAX_PER_CLIENT,
    H11Receiver,
)
from airflow_provider_tencent_ci.triggers.callbacks.tokens import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    CallbackTokenKeyError,
    _token_key,
    callback_base_path,
    callback_base_url,
    callback_url,
    channel_token,
    listener_host,
    listener_port,
    new_nonce,
    token_for_nonce,
    verify_token,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "EARLY_MAX_BYTES",
    "EARLY_MAX_PER_TOKEN",
    "EARLY_MAX_TOKENS",
    "EARLY_TTL_SECONDS",
    "HEADER_TIMEOUT_SECONDS",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "MAX_PER_CLIENT",
    "READ_TIMEOUT_SECONDS",
    "CallbackListener",
    "CallbackMessage",
    "CallbackParseError",
    "CallbackTokenKeyError",
    "Inbox",
    "Registration",
    "callback_base_url",
    "callback_url",
    "channel_token",
    "ensure_listener",
    "get_listener",
    "handle_callback",
    "new_nonce",
    "parse_callback",
    "reset_listener",
    "token_for_nonce",
    "verify_token",
]

log = logging.getLogger(__name__)
_unavailable = RateLimitedLog(log, burst=1, interval=300.0)
_told_no_key = False
LISTEN_BACKLOG = 1024  # queued connections use kernel memory, not descriptors; beyond it SYNs are dropped
BIND_RETRY_SECONDS = 5.0  # the first retry of a failed bind; then doubling, up to:
BIND_RETRY_MAX_SECONDS = 60.0


class CallbackListener:
    """The HTTP receiver in its own thread and loop; use :func:`get_listener` for the process-wide instance."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        header_timeout: float | None = None,
        max_connections: int = MAX_CONNECTIONS,
        max_per_client: int = MAX_PER_CLIENT,
        early_ttl: float = EARLY_TTL_SECONDS,
        early_max_tokens: int = EARLY_MAX_TOKENS,
        early_max_bytes: int = EARLY_MAX_BYTES,
        relay: callback_relay.CallbackRelay | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.router = CallbackRouter(
            early_ttl=early_ttl, early_max_tokens=early_max_tokens, early_max_bytes=early_max_bytes, relay=relay
        )
        self.receiver = H11Receiver(
            self.router,
            Limits(max_body_bytes=max_body_bytes, body_timeout=read_timeout),
            header_timeout=min(HEADER_TIMEOUT_SECONDS, read_timeout) if header_timeout is None else header_timeout,
            max_connections=max_connections,
            max_per_client=max_per_client,
            base_path=callback_base_path(),
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._serving: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._start_error: BaseException | None = None
        self.bind_failures = 0  # failed bind attempts before it served (diagnostics, tests)

    # Counters (tests, diagnostics): answers by status code, messages delivered and buffered.
    @property
    def responses(self) -> dict[int, int]:
        return self.receiver.responses

    @property
    def delivered(self) -> int:
        return self.router.delivered

    @property
    def buffered(self) -> int:
        return self.router.buffered

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0, *, retry_bind: bool = False) -> CallbackListener:
        """Bind and serve in the listener's thread. :raises OSError: the first bind failed (with ``retry_bind``
        the thread keeps retrying with backoff, and the listener serves once the port is free)."""
        self._thread = threading.Thread(
            target=self._thread_main, args=(retry_bind,), name="tencent-ci-callback-listener", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise OSError("callback listener did not start in time")
        error = self._start_error
        if error is not None:
            raise OSError(f"callback listener could not bind {self.host}:{self.port}: {error}")
        return self

    def _bind(self, retry: bool) -> socket.socket | None:
        """The listening socket; on failure, retry with backoff while ``retry`` (None: stopped, or no retry)."""
        delay, failures = BIND_RETRY_SECONDS, 0
        while not self._stopping.is_set():
            try:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                sock = socket.create_server((self.host, self.port), family=family, backlog=LISTEN_BACKLOG)
            except OSError as err:
                failures += 1
                self.bind_failures = failures
                self._start_error = err
                self._ready.set()
                if not retry:
                    return None
                if failures == 1:  # once per failure streak: a retry every few seconds must not flood the log
                    log.warning(
                        "CI callback listener cannot bind %s:%s (%s); retrying in the background (every %.0f s at "
                        "most, backing off to %.0f s); callbacks meanwhile arrive %s",
                        self.host,
                        self.port,
                        err,
                        delay,
                        BIND_RETRY_MAX_SECONDS,
                        "through the relay" if self.router.relay is not None else "only by the fallback poll",
                    )
                self._stopping.wait(delay)
                delay = min(2 * delay, BIND_RETRY_MAX_SECONDS)
                continue
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            if failures:
                log.info("CI callback listener bound %s:%s after %d failed attempts", self.host, self.port, failures)
            return sock
        return None

    def _thread_main(self, retry: bool) -> None:
        sock = self._bind(retry)
        if sock is None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._serving = loop.create_task(self.receiver.serve(sock))
        self._start_error = None
        log.info(
            "CI callback listener serving on %s:%s (CI is told %s/<token>)", self.host, self.port, callback_base_url()
        )
        self._ready.set()
        if self._stopping.is_set():  # stop() ran while we were binding
            self._serving.cancel()
        try:
            loop.run_until_complete(self._serving)
        except asyncio.CancelledError:
            pass
        finally:
            sock.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        self._stopping.set()  # ends a bind retry
        loop, serving = self._loop, self._serving
        if loop is not None and serving is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(serving.cancel)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        """Serving, or retrying its bind."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Serving: bound and accepting connections."""
        return self.alive and self._serving is not None and self._start_error is None

    # -- routing --------------------------------------------------------------------------------------------
    def register(self, token: str, inbox: Inbox) -> Registration:
        """Register the running loop's ``inbox`` for a token; buffered early callbacks are delivered at once."""
        return self.router.register(token, inbox)

    async def listen(self, token: str, inbox: Inbox) -> Registration:
        """Register, then take the callbacks the relay stored for the token (they arrived before this trigger
        started here, or while it moved between triggerers) and deliver them. A callback both stored and published
        after the registration arrives twice: a wake costs one job query, never a wrong result."""
        registration = self.register(token, inbox)
        subscriber = callback_relay.current_subscriber()
        if subscriber is not None:
            for relayed in await subscriber.take_pending(token):
                message = _parse_relayed(relayed.body, relayed.content_type)
                if message is not None:
                    registration.deliver(message)
        return registration

    def unregister(self, reg: Registration) -> None:
        self.router.unregister(reg)


_INSTANCE: CallbackListener | None = None
_INSTANCE_LOCK = threading.Lock()


def get_listener(relay_url: str | None = None) -> CallbackListener:
    """The process-wide listener, started on first use from ``[tencent_ci] callback_listener_host/port``; with a
    ``relay_url`` its receiver publishes to that relay.

    When the port cannot be bound (e.g. another process holds it), the listener is still returned and kept: its
    thread retries the bind with backoff and serves once the port is free; triggers register with it meanwhile and
    wake through the relay (if any) or their fallback poll. Blocking for the first bind attempt: call it through
    ``asyncio.to_thread`` (or use :func:`ensure_listener`) from a trigger.
    """
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is not None and _INSTANCE.alive:
            return _INSTANCE
        relay = callback_relay.CallbackRelay(relay_url) if relay_url else None
        listener = CallbackListener(listener_host(), listener_port(), relay=relay)
        try:
            listener.start(retry_bind=True)
        except OSError as err:  # the listener logged it (once) and retries in the background
            log.debug("CI callback listener not serving yet: %s", err)
        _INSTANCE = listener
        return _INSTANCE


def _parse_relayed(body: bytes, content_type: str) -> CallbackMessage | None:
    try:
        return parse_callback(body, content_type)
    except CallbackParseError as err:  # a receiver parsed it before publishing: not from one of ours
        _unavailable.warning("Callback relay: ignoring a message that does not parse: %.200s", err)
        return None


async def _deliver_relayed(token: str, body: bytes, content_type: str) -> bool:
    """The relay subscriber's ``deliver``: wake this process's triggers of the token, if any (else ignore it)."""
    listener = _INSTANCE
    if listener is None or not listener.router.holds(token):
        return False
    message = _parse_relayed(body, content_type)
    return message is not None and listener.router.deliver_local(token, message)


async def _recheck_pending() -> None:
    """After every (re)subscription: callbacks stored while the subscription was down, for every local token."""
    listener, subscriber = _INSTANCE, callback_relay.current_subscriber()
    if listener is None or subscriber is None:
        return
    for token in listener.router.tokens():
        for relayed in await subscriber.take_pending(token):
            message = _parse_relayed(relayed.body, relayed.content_type)
            if message is not None:
                listener.router.deliver_local(token, message)


async def ensure_listener() -> CallbackListener | None:
    """Start the process-wide listener (and the relay subscriber, when a relay is configured) if not running;
    every provider trigger awaits it at the start of ``run()``.

    Idempotent and safe from any number of triggers and loops at once. Never raises: without a token key (nothing
    could be accepted) it logs once and returns None, and waiting triggers rely on their fallback poll. A listener
    whose port is taken is returned all the same (it retries the bind in the background; see :func:`get_listener`).
    """
    current = _INSTANCE
    if current is not None and current.alive:
        return current
    if _token_key() is None:
        global _told_no_key
        if not _told_no_key:  # polling-only deployments need no key: say it once, quietly
            _told_no_key = True
            log.info("CI callback listener not started: %s", CallbackTokenKeyError())
        return None
    # The subscriber first: once the port serves, a received callback must already go to the relay.
    subscriber = await callback_relay.ensure_subscriber(_deliver_relayed, _recheck_pending)
    return await asyncio.to_thread(get_listener, subscriber.url if subscriber is not None else None)


def reset_listener() -> None:
    """Stop the process-wide listener (tests); the relay subscriber stays (see ``callback_relay.stop_subscriber``)."""
    global _INSTANCE
    with _INSTANCE_LOCK:
        if _INSTANCE is not None:
            _INSTANCE.stop()
        _INSTANCE = None
