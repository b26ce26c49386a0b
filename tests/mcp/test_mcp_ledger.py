"""The confirmation ledgers: a 2026-era confirmation nonce is taken exactly once, by the caller, tool,
arguments and question it was issued for - in memory, and in Redis shared by replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from tests.conftest import require_redis

from testgate.errors import ConfirmationRefused
from testgate.mcp.confirm import Ledger, MemoryLedger, RedisLedger

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def ledgers(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two ledgers as two replicas see them: one shared Redis, or (memory) the same process twice."""
    if request.param == "memory":
        one = MemoryLedger(ttl=1)
        yield one, one
        return
    require_redis()
    pair = (RedisLedger(REDIS, ttl=1), RedisLedger(REDIS, ttl=1))
    yield pair
    for ledger in pair:
        await ledger.close()


async def test_a_nonce_is_redeemed_once_wherever_it_is_presented(ledgers: tuple[Ledger, Ledger]) -> None:
    asking, answering = ledgers
    nonce = await asking.issue("binding")
    assert await answering.redeem(nonce, "binding") is True
    assert await answering.redeem(nonce, "binding") is False
    assert await asking.redeem(nonce, "binding") is False


async def test_a_nonce_presented_for_anything_else_is_burnt(ledgers: tuple[Ledger, Ledger]) -> None:
    asking, answering = ledgers
    nonce = await asking.issue("delete smoke")
    assert await answering.redeem(nonce, "delete everything") is False
    assert await answering.redeem(nonce, "delete smoke") is False


async def test_a_nonce_expires(ledgers: tuple[Ledger, Ledger]) -> None:
    asking, answering = ledgers
    nonce = await asking.issue("binding")
    await asyncio.sleep(2.1)  # Redis expiry has one-second resolution
    assert await answering.redeem(nonce, "binding") is False


async def test_unknown_nonces_redeem_nothing(ledgers: tuple[Ledger, Ledger]) -> None:
    assert await ledgers[1].redeem("never-issued", "binding") is False


@pytest.mark.redis
async def test_redis_keys_hold_a_hash_of_the_nonce_never_the_nonce_under_the_deployments_prefix() -> None:
    # docs: TESTGATE_HTTP__RATE_LIMIT_PREFIX is the Redis key prefix of one deployment sharing a Redis; the
    # confirmation keys ignored it (testgate:mcp-confirm:…), so per-deployment ACLs or clean-up missed them.
    require_redis()
    from redis.asyncio import Redis

    ledger = RedisLedger(REDIS, ttl=30, prefix="deploy-7")
    client = Redis.from_url(REDIS)
    try:
        nonce = await ledger.issue("binding")
        keys = [k.decode() async for k in client.scan_iter(match="deploy-7:mcp-confirm:*")]
        assert len(keys) == 1
        assert all(nonce not in k for k in keys)
        assert await ledger.redeem(nonce, "binding") is True
    finally:
        await client.aclose()
        await ledger.close()


async def test_an_unreachable_redis_refuses_the_confirmation_and_changes_nothing() -> None:
    ledger = RedisLedger("redis://127.0.0.1:1/0", ttl=30, timeout=0.5)
    try:
        with pytest.raises(ConfirmationRefused, match="nothing was changed"):
            await ledger.issue("binding")
        with pytest.raises(ConfirmationRefused, match="nothing was changed"):
            await ledger.redeem("some-nonce", "binding")
    finally:
        await ledger.close()
