"""The shared callback relay on Redis: any receiver publishes a CI callback, every triggerer process subscribes once.

Why: with several triggerers (HA, rolling restarts), CI's callback reaches a receiver (the API-server plugin, or any
triggerer's listener) that usually does not run the trigger waiting for it. The receiver hands the callback to the
relay; the relay wakes the triggerer that holds the token. Configure it in ``[tencent_ci]`` with
``callback_relay_conn_id`` (an Airflow ``redis`` connection: host, port, login, password, extra ``db`` / ``ssl``)
or ``callback_relay_url`` (``redis://`` or ``rediss://``). Install ``airflow-provider-tencent-ci[redis]``.

On Redis, per callback (one MULTI transaction, then one PUBLISH):

- ``RPUSH tencent-ci:callback:<sha256(token)> <message>`` with ``EXPIRE`` (TTL) and ``LTRIM`` (the newest few):
  the callback waits there for a trigger that registers later (CI was faster than the triggerer, or the trigger
  is moving to another triggerer); :meth:`CallbackRelay.take_pending` reads and removes it.
- ``PUBLISH tencent-ci:callbacks <message>``: every subscribed triggerer process gets it, and hands it to its
  ``deliver`` coroutine, which wakes the local trigger(s) of the token or ignores it.

``<message>`` is JSON ``{"token", "content_type", "body"}`` (body base64). A callback only wakes a trigger; the
trigger confirms the job state with one query, so a duplicate (the pending copy and the published one) costs one
query, never a wrong result. The relay is infrastructure to trust like the Celery broker on the same Redis: it
sees tokens (bearer secrets of callback URLs); key names carry only a hash of the token.

Without a relay, callbacks stay in the process that received them (one triggerer only); :func:`start_subscriber`
says so once in the log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_tencent_ci.common import config

log = logging.getLogger(__name__)

CHANNEL = "tencent-ci:callbacks"
KEY_PREFIX = "tencent-ci:callback:"
PENDING_TTL_SECONDS = 3600  # as long as the in-process listener keeps an early callback
PENDING_MAX_PER_TOKEN = 10
SOCKET_TIMEOUT_SECONDS = 5.0
RECONNECT_MAX_SECONDS = 5.0
HEALTH_CHECK_SECONDS = 10  # a PING on an idle subscription finds a dead connection

Deliver = Callable[[str, bytes, str], Awaitable[bool]]
"""``deliver(token, body, content_type)``: True when a trigger of this process holds the token and was woken."""


class CallbackRelayError(ConnectionError):
    """The relay could not store or publish a callback (a receiver answers 503 so that CI retries)."""


@dataclass(frozen=True)
class RelayedCallback:
    token: str
    body: bytes
    content_type: str

    def encode(self) -> str:
        body = base64.b64encode(self.body).decode()
        return json.dumps({"token": self.token, "content_type": self.content_type, "body": body})

    @classmethod
    def decode(cls, raw: bytes | str) -> RelayedCallback:
        doc = json.loads(raw)
        return cls(str(doc["token"]), base64.b64decode(doc["body"], validate=True), str(doc["content_type"]))


def pending_key(token: str) -> str:
    return KEY_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def redacted(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# -- configuration --------------------------------------------------------------------------------------------
def url_from_connection(conn: Any) -> str:
    """A redis URL from an Airflow ``redis`` connection (the fields the Redis provider's hook reads)."""
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    scheme = "rediss" if str(extra.get("ssl", "")).lower() in ("true", "1") else "redis"
    auth = ""
    if conn.password:
        auth = f"{quote(conn.login or '', safe='')}:{quote(conn.password, safe='')}@"
    elif conn.login:
        auth = f"{quote(conn.login, safe='')}@"
    db = int(extra.get("db", 0) or 0)
    return f"{scheme}://{auth}{conn.host or '127.0.0.1'}:{int(conn.port or 6379)}/{db}"


def _configured() -> tuple[str, str]:
    return config.get("callback_relay_conn_id"), config.get("callback_relay_url")


def relay_url() -> str | None:
    """The configured relay URL, or None (sync: API server and other non-trigger code)."""
    conn_id, url = _configured()
    if conn_id:
        from airflow.sdk import BaseHook

        return url_from_connection(BaseHook.get_connection(conn_id))
    return url or None


async def arelay_url() -> str | None:
    """The configured relay URL, or None (async: from a trigger, through the triggerer's connection lookup)."""
    conn_id, url = _configured()
    if conn_id:
        from airflow.sdk import BaseHook

        return url_from_connection(await BaseHook.aget_connection(conn_id))
    return url or None


# -- the relay ----------------------------------------------------------------------------------------------------
def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError, OSError)


class CallbackRelay:
    """Publishing and reading pending callbacks; one instance per event loop (it holds a connection pool)."""

    def __init__(self, url: str, *, ttl: int = PENDING_TTL_SECONDS, max_per_token: int = PENDING_MAX_PER_TOKEN) -> None:
        import redis.asyncio

        self.url = url
        self.ttl = ttl
        self.max_per_token = max_per_token
        self._client = redis.asyncio.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
        )

    async def publish(self, token: str, body: bytes, content_type: str) -> None:
        """Store the callback (TTL) and wake the subscribers; raises :class:`CallbackRelayError` when not stored."""
        message = RelayedCallback(token, body, content_type).encode()
        key = pending_key(token)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(key, message)
                pipe.ltrim(key, -self.max_per_token, -1)
                pipe.expire(key, self.ttl)
                await pipe.execute()
            await self._client.publish(CHANNEL, message)
        except _redis_errors() as err:
            raise CallbackRelayError(
                f"callback relay {redacted(self.url)} unavailable: {type(err).__name__}: {err}"
            ) from None

    async def take_pending(self, token: str) -> list[RelayedCallback]:
        """The callbacks stored for a token (oldest first), removed from Redis; [] when the relay is unreachable."""
        key = pending_key(token)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lrange(key, 0, -1)
                pipe.delete(key)
                stored, _ = await pipe.execute()
        except _redis_errors() as err:
            log.warning("Callback relay %s unavailable (%s); the fallback poll covers it", redacted(self.url), err)
            return []
        return [callback for raw in stored if (callback := _decode(raw)) is not None]

    async def aclose(self) -> None:
        await self._client.aclose()


def _decode(raw: bytes | str) -> RelayedCallback | None:
    try:
        return RelayedCallback.decode(raw)
    except (ValueError, KeyError, TypeError):
        log.warning("Callback relay: ignoring a malformed message on %s", CHANNEL)
        return None


class RelaySubscriber:
    """ONE subscription to the relay channel per process, on its own thread and event loop.

    Each message is handed to ``deliver``; ``on_subscribed`` (optional) runs after every (re)subscription, so the
    owner can :meth:`take_pending` for its tokens after an outage. Redis going away is logged and retried with
    backoff until :meth:`stop`. :meth:`take_pending` may be awaited from any event loop (a trigger's): it runs on
    the subscriber's loop, with the process's one Redis client.
    """

    def __init__(self, url: str, deliver: Deliver, on_subscribed: Callable[[], Awaitable[None]] | None = None) -> None:
        self.url = url
        self.deliver = deliver
        self.on_subscribed = on_subscribed
        self.subscribed = threading.Event()
        self.delivered = 0
        self.ignored = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay: CallbackRelay | None = None

    def start(self) -> RelaySubscriber:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="tencent-ci-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    async def take_pending(self, token: str) -> list[RelayedCallback]:
        """:meth:`CallbackRelay.take_pending` for a trigger registering late ([] before the subscriber runs)."""
        loop, relay = self._loop, self._relay
        if loop is None or relay is None:
            return []
        try:
            future = asyncio.run_coroutine_threadsafe(relay.take_pending(token), loop)
        except RuntimeError:  # the subscriber's loop has closed
            return []
        return await asyncio.wrap_future(future)

    async def _run(self) -> None:
        self._relay = CallbackRelay(self.url)
        self._loop = asyncio.get_running_loop()
        try:
            await self._subscribe_until_stopped()
        finally:
            self._loop = None
            await self._relay.aclose()

    async def _subscribe_until_stopped(self) -> None:
        import redis.asyncio

        backoff = 0.1
        while not self._stop.is_set():
            client = redis.asyncio.Redis.from_url(
                self.url, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=HEALTH_CHECK_SECONDS
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                log.info("Callback relay: subscribed to %s on %s", CHANNEL, redacted(self.url))
                self.subscribed.set()
                backoff = 0.1
                if self.on_subscribed is not None:
                    try:
                        await self.on_subscribed()
                    except Exception:
                        log.exception("Callback relay: the on-subscribed hook failed")
                while not self._stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        await self._handle(message["data"])
            except _redis_errors() as err:
                if self.subscribed.is_set():
                    log.warning("Callback relay %s lost (%s); reconnecting", redacted(self.url), err)
                self.subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)
            finally:
                self.subscribed.clear()
                try:
                    await pubsub.aclose()
                    await client.aclose()
                except _redis_errors():
                    pass

    async def _handle(self, raw: bytes) -> None:
        callback = _decode(raw)
        if callback is None:
            return
        try:
            woke = await self.deliver(callback.token, callback.body, callback.content_type)
        except Exception:
            log.exception("Callback relay: delivering a callback failed")
            return
        if woke:
            self.delivered += 1
        else:
            self.ignored += 1


_SUBSCRIBER: RelaySubscriber | None = None
_SUBSCRIBER_LOCK = threading.Lock()
_SAID_PROCESS_LOCAL = False  # also: "this process has no relay", so the config is not looked up again


async def ensure_subscriber(
    deliver: Deliver, on_subscribed: Callable[[], Awaitable[None]] | None = None
) -> RelaySubscriber | None:
    """From a trigger: the process's one subscriber, started on first call from the configured relay; None when
    there is no relay (the log says once that callbacks are process-local) or its connection cannot be read."""
    if _SUBSCRIBER is not None or _SAID_PROCESS_LOCAL:
        return _SUBSCRIBER
    try:
        url = await arelay_url()
    except Exception as err:
        log.error("Callback relay: cannot read [tencent_ci] callback_relay_conn_id: %s", err)
        url = None
    return start_subscriber(url, deliver, on_subscribed)


def start_subscriber(
    url: str | None, deliver: Deliver, on_subscribed: Callable[[], Awaitable[None]] | None = None
) -> RelaySubscriber | None:
    """The process's one subscriber, started on first call (later calls return it); None without a relay URL.

    ``url`` comes from :func:`arelay_url` (triggers) or :func:`relay_url`. Without one, the log says once that
    callbacks are process-local.
    """
    global _SUBSCRIBER, _SAID_PROCESS_LOCAL
    with _SUBSCRIBER_LOCK:
        if not url:
            if not _SAID_PROCESS_LOCAL:
                _SAID_PROCESS_LOCAL = True
                log.warning(
                    "No [tencent_ci] callback_relay_conn_id or callback_relay_url: CI callbacks are process-local "
                    "(a callback reaching another triggerer only wakes its task at the fallback poll)"
                )
            return None
        if _SUBSCRIBER is None:
            _SUBSCRIBER = RelaySubscriber(url, deliver, on_subscribed).start()
        return _SUBSCRIBER


def current_subscriber() -> RelaySubscriber | None:
    """The process's subscriber, if one was started."""
    return _SUBSCRIBER


def stop_subscriber() -> None:
    """Stop the process's subscriber (tests, shutdown)."""
    global _SUBSCRIBER
    with _SUBSCRIBER_LOCK:
        if _SUBSCRIBER is not None:
            _SUBSCRIBER.stop()
        _SUBSCRIBER = None
