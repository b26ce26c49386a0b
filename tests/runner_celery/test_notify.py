"""Cross-process notifications: PostgreSQL LISTEN/NOTIFY and Redis pub/sub wake waiters elsewhere."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from tests.conftest import POSTGRES_URL, service_unavailable
from tests.runner_celery.conftest import REDIS_URL

from testgate.config import CelerySettings, Settings
from testgate.platform.notify import Channel, PostgresChannel, RedisChannel, SharedEvents, shared_events

ChannelFactory = Callable[[], Channel]


async def postgres_channels() -> ChannelFactory:
    import asyncpg

    dsn = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        connection = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        service_unavailable("PostgreSQL", str(exc))
    await connection.close()
    name = f"tg_events_{secrets.token_hex(4)}"  # runs in parallel must not hear each other
    return lambda: PostgresChannel(dsn, name)


async def redis_channels() -> ChannelFactory:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, RedisError) as exc:
        service_unavailable("Redis", str(exc))
    finally:
        await client.aclose()
    name = f"tg:{secrets.token_hex(4)}:events"
    return lambda: RedisChannel(REDIS_URL, name)


@pytest.fixture(
    params=[
        pytest.param(postgres_channels, marks=pytest.mark.postgres, id="postgres"),
        pytest.param(redis_channels, marks=pytest.mark.redis, id="redis"),
    ]
)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SharedEvents, SharedEvents]]:
    """A listening control plane and a publishing worker on one channel."""
    channels = await request.param()
    control, worker = SharedEvents(channels()), SharedEvents(channels())
    await control.start()
    await worker.start(listen=False)
    yield control, worker
    await worker.close()
    await control.close()


async def test_a_notification_from_another_process_wakes_a_waiter(pair: tuple[SharedEvents, SharedEvents]) -> None:
    control, worker = pair
    seen = control.snapshot(["e1"])

    await worker.notify("e1")

    with anyio.fail_after(5):
        assert await control.wait_any(seen, timeout=5) is True
    assert control.version("e1") == 1


async def test_a_process_does_not_count_its_own_notifications_twice(pair: tuple[SharedEvents, SharedEvents]) -> None:
    control, worker = pair
    await control.notify("mine")
    seen = control.snapshot(["theirs"])

    # Sent after ours, so once theirs arrived, our own echo has been delivered (and ignored) too.
    await worker.notify("theirs")
    with anyio.fail_after(5):
        await control.wait_any(seen, timeout=5)

    assert control.version("mine") == 1


def test_the_channel_follows_the_deployment() -> None:
    assert shared_events(Settings(database_url="sqlite+aiosqlite:///x.db")) is None
    on_postgres = shared_events(Settings(database_url="postgresql://u@db/testgate"))
    assert isinstance(on_postgres, SharedEvents)
    assert isinstance(on_postgres.channel, PostgresChannel)
    with_redis = shared_events(Settings(celery=CelerySettings(notify_url="redis://cache:6379/0")))
    assert isinstance(with_redis, SharedEvents)
    assert isinstance(with_redis.channel, RedisChannel)
