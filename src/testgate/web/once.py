"""Single-use console forms: a form that creates or rotates a token does it once, however often it is sent.

A browser sends a form again when a person reloads the page that answered it ("confirm form
resubmission") or goes back and presses the button again; a copied request can be replayed too. For a
form whose answer is a secret shown once, each of those would make another token.

So such a form carries ``once``: ``<nonce>.<value>``, a random nonce and the console's CSRF value for a
purpose naming the sign-in, the action, its subject and the nonce (``session.once_purpose``). Nothing is
stored when the page is rendered. The post is checked like any form (CSRF, then this value), then it
*spends* the nonce: an atomic set-if-absent of the nonce's SHA-256 in the ledger. The first post finds it
absent and goes on; every later one finds it spent and gets a page saying the form was already submitted,
and nothing is made.

    ledger      TESTGATE_REDIS_URL set: Redis (``SET NX EX``), shared by every replica, like the rate limits
                and the MCP confirmation nonces; unset: this process's memory (one replica)
    kept        ``oauth.session_ttl`` from the post: the value is bound to its sign-in, which ends sooner
    released    when the action is refused with a domain error (dispatch changed nothing), so the person
                can correct the form and send it again; never after a crash or a cancellation
    Redis down  the form is refused with 503 and nothing is made: a token is never made on a post that
                could not be checked

The memory ledger holds at most ``CAPACITY`` spent nonces (the oldest go first): only posts that made
something are kept, and each of those made a token.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from testgate.errors import TestgateError

log = structlog.get_logger("testgate.web")

CAPACITY = 100_000


class Unavailable(TestgateError):
    """The ledger could not be reached, so the form was not acted on."""


class Ledger(Protocol):
    async def spend(self, key: str, ttl: int) -> bool:
        """True the first time ``key`` is spent within ``ttl`` seconds, False every later time."""

    async def release(self, key: str) -> None:
        """Make ``key`` spendable again (its action did not happen)."""

    async def close(self) -> None: ...


class MemoryLedger:
    """Spent keys in this process, each until its expiry (monotonic seconds)."""

    def __init__(self, capacity: int = CAPACITY, clock: Callable[[], float] = time.monotonic) -> None:
        self._spent: dict[str, float] = {}
        self._capacity, self._clock = capacity, clock

    async def spend(self, key: str, ttl: int) -> bool:
        now = self._clock()
        if self._spent.get(key, now) > now:
            return False
        self._spent.pop(key, None)
        if len(self._spent) >= self._capacity:
            self._spent = {k: end for k, end in self._spent.items() if end > now}
        while len(self._spent) >= self._capacity:
            del self._spent[next(iter(self._spent))]
        self._spent[key] = now + ttl
        return True

    async def release(self, key: str) -> None:
        self._spent.pop(key, None)

    async def close(self) -> None:
        self._spent.clear()


class RedisLedger:
    """Spent keys in Redis: ``SET NX`` lets exactly one post spend a key, whichever replica it reaches."""

    def __init__(self, url: str, timeout: float = 2.0, prefix: str = "testgate") -> None:
        self._prefix = f"{prefix}:console-once:"  # TESTGATE_HTTP__RATE_LIMIT_PREFIX: one per deployment
        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def spend(self, key: str, ttl: int) -> bool:
        try:
            return bool(await self._redis.set(self._prefix + key, b"1", nx=True, ex=max(1, ttl)))
        except RedisError as exc:
            raise Unavailable(
                f"this form could not be checked against being sent twice (shared state unavailable: "
                f"{type(exc).__name__}); nothing was made. Try again shortly"
            ) from None

    async def release(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except RedisError as exc:  # the form stays spent: sending it again says so, nothing is made twice
            log.warning("could not release a single-use form", error=type(exc).__name__)

    async def close(self) -> None:
        await self._redis.aclose()


def ledger_for(redis_url: str | None, prefix: str = "testgate") -> Ledger:
    """Redis when replicas share one (keys under ``prefix``), else this process's memory."""
    return RedisLedger(redis_url, prefix=prefix) if redis_url else MemoryLedger()


@asynccontextmanager
async def spending(ledger: Ledger, nonce: str, ttl: int) -> AsyncIterator[bool]:
    """Spend ``nonce``: yields whether this is its first use; a domain error inside gives it back."""
    key = hashlib.sha256(nonce.encode()).hexdigest()
    first = await ledger.spend(key, ttl)
    try:
        yield first
    except TestgateError:
        if first:
            await ledger.release(key)  # dispatch refused or failed before any change
        raise
