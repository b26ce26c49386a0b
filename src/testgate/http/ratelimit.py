"""Rate limits per principal and per source address, in memory or shared by every replica through Redis.

Buckets (fixed windows from the first hit; ``limits`` parses the specs and, with Redis, counts):

    sign-in     http.rate_limit_auth      per address, on the requests to the sign-in and token endpoints
                                          that present a credential (``paths.presents_credential``)
    principal   http.rate_limit           per bearer token, keyed on its SHA-256 (never the token itself)
    address     http.rate_limit_address   per address (IPv6: per /64, one subscriber's usual allocation)

A request spends one unit in each bucket that applies and is refused (429, ``Retry-After`` and the
``RateLimit-*`` fields of draft-ietf-httpapi-ratelimit-headers) when any is empty. The address is the
peer's, or the client a trusted proxy forwarded (``testgate.http.forwarded`` runs first). A browser's
form post to a path with a page of its own (the console's sign-in form) gets that page, with status 429
and the same fields, instead of a problem document.

Without Redis the windows are counted here, in a dictionary: ``limits``' in-memory storages take a lock
per key and start a task (asyncio) or a thread (sync) to expire keys whenever the last one has finished,
which under load is once per request. Measured in isolation, one request's two buckets cost 10.6 µs
that way and 0.6 µs here.

Redis unreachable: ``fail_open`` serves without limits and logs a warning (at most every 30 s);
``fail_closed`` answers 503. After a failure Redis is left alone for a second, so an outage does not add
a connect timeout to every request.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.access.verifier import bearer_of
from testgate.http import metrics, paths, replies
from testgate.http.headers import header
from testgate.http.request_id import HEADER, scope_request_id
from testgate.http.settings import HttpSettings

log = structlog.get_logger("testgate.http")

RETRY_REDIS_AFTER = 1.0  # seconds without Redis calls after a failure
WARN_EVERY = 30.0  # seconds between fail-open warnings


@dataclass(frozen=True)
class Bucket:
    """One limit applied to one key."""

    name: str
    item: RateLimitItem
    key: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of spending a request: allowed, limited by ``bucket`` until ``reset``, or undecidable."""

    allowed: bool
    bucket: Bucket | None = None
    reset: float = 0.0
    unavailable: bool = False


ALLOWED = Verdict(allowed=True)


def _item(spec: str) -> RateLimitItem | None:
    return parse(spec) if spec else None


@functools.lru_cache(maxsize=4096)
def address_key(host: str) -> str:
    """The address a bucket is keyed on: IPv4 as is, IPv6 by its /64 (remembered: parsing costs more)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Windows:
    """Fixed windows counted in this process: each key's window starts at its first hit and lasts the item's expiry.

    Expired windows are dropped at most once per ``PRUNE_EVERY`` seconds, so the dictionary holds the keys
    seen within the longest window plus that much (a key is a hash or an address: bounded by the clients).
    """

    PRUNE_EVERY = 10.0

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        self._pruned = -math.inf

    def hit(self, bucket: Bucket, now: float) -> float | None:
        """Spend one unit: ``None`` when it was there, else when the window ends (epoch seconds)."""
        key = (bucket.name, bucket.key)  # a limiter has one item per bucket name
        end, count = self._windows.get(key, (0.0, 0))
        if end <= now:
            end, count = now + bucket.item.get_expiry(), 0
        if count >= bucket.item.amount:
            return end
        self._windows[key] = (end, count + 1)
        return None

    def prune(self, now: float) -> None:
        """Forget the windows that have ended (cheap to call on every request: it works every few seconds)."""
        if now - self._pruned < self.PRUNE_EVERY:
            return
        self._pruned = now
        for key in [key for key, (end, _) in self._windows.items() if end <= now]:
            del self._windows[key]


class Limiter:
    """Spends requests against the buckets; storage is created on first use, inside the event loop."""

    def __init__(self, settings: HttpSettings, redis_url: str | None) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.auth, self.principal, self.address = (
            _item(settings.rate_limit_auth),
            _item(settings.rate_limit),
            _item(settings.rate_limit_address),
        )
        self._windows = Windows()
        self._pool: ConnectionPool | None = None
        self._strategy: FixedWindowRateLimiter | None = None
        self._down_until = 0.0
        self._warned_at = -math.inf

    @property
    def shared(self) -> bool:
        """Limits are shared by every replica (Redis) rather than kept in this process."""
        return self.redis_url is not None

    def _limiter(self, redis_url: str) -> FixedWindowRateLimiter:
        if self._strategy is None:
            timeout = self.settings.redis_timeout
            self._pool = ConnectionPool.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
            # limits types its client options as scalars; the pool is passed through to redis-py as is.
            pool: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix=self.settings.rate_limit_prefix,
                **pool,
            )
            self._strategy = FixedWindowRateLimiter(storage)
        return self._strategy

    def buckets(self, scope: Scope) -> list[Bucket]:
        """The buckets a request spends from."""
        client = scope.get("client")
        address = address_key(client[0]) if client else "unknown"
        if paths.presents_credential(scope["method"], scope["path"]):
            return [Bucket("sign-in", self.auth, address)] if self.auth else []
        found = []
        token = bearer_of(header(scope, b"authorization"))
        if token is not None and self.principal is not None:
            found.append(Bucket("principal", self.principal, hashlib.sha256(token.encode()).hexdigest()[:40]))
        if self.address is not None:
            found.append(Bucket("address", self.address, address))
        return found

    async def spend(self, buckets: list[Bucket]) -> Verdict:
        """Take one unit from each bucket; the first empty one refuses the request."""
        if self.redis_url is None:
            return self.spend_here(buckets)
        if time.monotonic() < self._down_until:
            return Verdict(allowed=False, unavailable=True)
        limiter = self._limiter(self.redis_url)
        try:
            for bucket in buckets:
                if not await limiter.hit(bucket.item, bucket.name, bucket.key):
                    stats = await limiter.get_window_stats(bucket.item, bucket.name, bucket.key)
                    return Verdict(allowed=False, bucket=bucket, reset=stats.reset_time)
        except (StorageError, RedisError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_REDIS_AFTER
            self._warn(exc)
            return Verdict(allowed=False, unavailable=True)
        return ALLOWED

    def spend_here(self, buckets: list[Bucket]) -> Verdict:
        """``spend`` on this process's own windows (no Redis)."""
        now = time.time()
        self._windows.prune(now)
        for bucket in buckets:
            reset = self._windows.hit(bucket, now)
            if reset is not None:
                return Verdict(allowed=False, bucket=bucket, reset=reset)
        return ALLOWED

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            policy = self.settings.redis_failure
            effect = "serving without rate limits" if policy == "fail_open" else "refusing requests with 503"
            log.warning("rate limiting unavailable: Redis unreachable", policy=policy, effect=effect, error=str(exc))

    async def ping(self) -> bool:
        """Redis answers (always true in memory)."""
        if self.redis_url is None:
            return True
        self._limiter(self.redis_url)
        try:
            return bool(await Redis(connection_pool=self._pool).ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        """Close the Redis connections."""
        if self._pool is not None:
            await self._pool.aclose()


class LimitedPage(Protocol):
    async def __call__(self, scope: Scope, receive: Receive, retry_after: int) -> Response:
        """The page telling a person at a browser to try again in ``retry_after`` seconds (status 429)."""


class RateLimit:
    """Refuse requests over their buckets with 429 (JSON-RPC on MCP endpoints); probes are never limited.

    ``pages`` maps a path to the page a browser's form post there gets instead of a problem document.
    """

    def __init__(self, app: ASGIApp, *, limiter: Limiter, pages: Mapping[str, LimitedPage] | None = None) -> None:
        self.app, self.limiter, self.pages = app, limiter, pages or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in paths.PROBES:
            await self.app(scope, receive, send)
            return
        buckets = self.limiter.buckets(scope)
        verdict = await self.limiter.spend(buckets) if buckets else ALLOWED
        if verdict.allowed or (verdict.unavailable and self.limiter.settings.redis_failure == "fail_open"):
            await self.app(scope, receive, send)
            return
        if verdict.unavailable:
            detail = "rate limiting is unavailable, so requests are refused; try again shortly"
            reply = replies.refusal(scope, 503, "rate-limit-unavailable", "Rate limit unavailable", detail)
        else:
            reply = await self._limited(scope, receive, verdict)
        await reply(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, verdict: Verdict) -> Response:
        assert verdict.bucket is not None
        item = verdict.bucket.item
        metrics.RATE_LIMITED.labels(verdict.bucket.name).inc()
        wait = max(1, math.ceil(verdict.reset - time.time()))
        headers = {
            HEADER: scope_request_id(scope),
            "Retry-After": str(wait),
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(wait),
            "RateLimit-Policy": f"{item.amount};w={item.get_expiry()}",
        }
        page = self.pages.get(scope["path"])
        if page is not None and _form_post(scope):
            response = await page(scope, receive, wait)
            response.headers.update(headers)
            return response
        detail = (
            f"too many requests ({item.amount} per {item.get_expiry()} s, {verdict.bucket.name}); retry in {wait} s"
        )
        return replies.refusal(
            scope, 429, "rate-limited", "Too many requests", detail, headers=headers, bucket=verdict.bucket.name
        )


def _form_post(scope: Scope) -> bool:
    """A browser submitting an HTML form (what a script posting JSON to the same path is not)."""
    kind = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return scope["method"] == "POST" and kind in ("application/x-www-form-urlencoded", "multipart/form-data")
