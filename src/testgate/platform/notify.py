"""Execution change notifications across processes: PostgreSQL LISTEN/NOTIFY, or Redis pub/sub.

``SharedEvents`` is the in-process ``Events`` plus a channel: ``notify`` wakes local waiters and
publishes the execution id; a listening process hands ids published by other processes to its own
waiters. So a Celery worker's log lines and status changes wake ``wait`` and live-log followers in the
control plane. A payload is an origin and an execution id, never log text or values. Notifications
are best effort: one lost while a connection is down costs a waiter one recheck of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
import structlog
from sqlalchemy.engine import make_url

from testgate.config import Settings
from testgate.platform.events import Events

log = structlog.get_logger("testgate.notify")

CHANNEL = "testgate_events"
CONNECT_SECONDS = 5.0
RECONNECT_SECONDS = 1.0
READY_SECONDS = 5.0
_PG_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

Deliver = Callable[[str], None]


class Channel(Protocol):
    async def publish(self, payload: str) -> None:
        """Send ``payload`` to every listener; transport errors are logged, never raised."""

    async def listen(self, deliver: Deliver, ready: asyncio.Event) -> None:
        """Hand each payload to ``deliver`` until cancelled, reconnecting; set ``ready`` once listening."""

    async def close(self) -> None:
        """Close the publishing connection."""


class PostgresChannel:
    """NOTIFY through one connection, LISTEN on another: PostgreSQL only delivers between sessions."""

    def __init__(self, dsn: str, name: str = CHANNEL) -> None:
        self._dsn = dsn
        self._name = name
        self._sender: Any = None
        self._lock = asyncio.Lock()

    async def publish(self, payload: str) -> None:
        async with self._lock:  # one connection runs one query at a time
            try:
                if self._sender is None or self._sender.is_closed():
                    self._sender = await asyncpg.connect(self._dsn, timeout=CONNECT_SECONDS)
                await self._sender.execute("SELECT pg_notify($1, $2)", self._name, payload)
            except _PG_ERRORS as exc:
                self._sender = None
                log.warning("notification not sent", channel=self._name, error=str(exc))

    async def listen(self, deliver: Deliver, ready: asyncio.Event) -> None:
        while True:
            try:
                await self._listen_once(deliver, ready)
            except _PG_ERRORS as exc:
                log.warning("notification listener disconnected", channel=self._name, error=str(exc))
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _listen_once(self, deliver: Deliver, ready: asyncio.Event) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=CONNECT_SECONDS)
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self._name, lambda _c, _pid, _channel, payload: deliver(payload))
            ready.set()
            await lost.wait()
        finally:
            with contextlib.suppress(*_PG_ERRORS):
                await connection.close(timeout=CONNECT_SECONDS)

    async def close(self) -> None:
        async with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(*_PG_ERRORS):
                await sender.close(timeout=CONNECT_SECONDS)


class RedisChannel:
    """Redis pub/sub: for deployments whose control plane and workers share a Redis."""

    def __init__(self, url: str, name: str) -> None:
        # Imported here: only deployments that configure a notify URL need the redis package.
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=CONNECT_SECONDS)
        self._name = name
        self._errors: tuple[type[Exception], ...] = (OSError, RedisError)

    async def publish(self, payload: str) -> None:
        try:
            await self._client.publish(self._name, payload)
        except self._errors as exc:
            log.warning("notification not sent", channel=self._name, error=str(exc))

    async def listen(self, deliver: Deliver, ready: asyncio.Event) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._name)
                ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        deliver(data.decode() if isinstance(data, bytes) else str(data))
            except self._errors as exc:
                log.warning("notification listener disconnected", channel=self._name, error=str(exc))
            finally:
                with contextlib.suppress(*self._errors):
                    await pubsub.close()
            await asyncio.sleep(RECONNECT_SECONDS)

    async def close(self) -> None:
        with contextlib.suppress(*self._errors):
            await self._client.aclose()


class SharedEvents(Events):
    """``Events`` whose notifications also reach, and come from, other processes on ``channel``."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel
        self._origin = secrets.token_hex(8)
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, listen: bool = True) -> None:
        """Begin relaying; with ``listen``, wait (a bounded time) until other processes are heard."""
        if not listen or self._tasks:
            return
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.channel.listen(self._receive, ready), name="testgate-notify-listen"),
            asyncio.create_task(self._pump(), name="testgate-notify-pump"),
        ]
        try:
            await asyncio.wait_for(ready.wait(), READY_SECONDS)
        except TimeoutError:
            log.warning("not listening for notifications yet; retrying in the background")

    async def notify(self, execution_id: str) -> None:
        """Wake local waiters, then tell other processes."""
        await super().notify(execution_id)
        await self.channel.publish(f"{self._origin} {execution_id}")

    def _receive(self, payload: str) -> None:
        origin, _, execution_id = payload.partition(" ")
        if origin != self._origin and execution_id:  # our own notifications woke our waiters already
            self._inbox.put_nowait(execution_id)

    async def _pump(self) -> None:
        while True:
            await Events.notify(self, await self._inbox.get())

    async def close(self) -> None:
        """Stop listening and close the channel."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.channel.close()


def shared_events(settings: Settings) -> SharedEvents | None:
    """Redis pub/sub when ``celery.notify_url`` is set, else LISTEN/NOTIFY on PostgreSQL; None on SQLite."""
    if settings.celery.notify_url is not None:
        name = f"{settings.celery.queue_prefix}:events"
        return SharedEvents(RedisChannel(settings.celery.notify_url.get_secret_value(), name))
    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "postgresql":
        return None  # one machine, usually one process: readers recheck the file for other writers
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return SharedEvents(PostgresChannel(dsn))
