"""Rate limits per principal, per address and on sign-in; 429 with Retry-After and RateLimit fields; Redis outages."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
import structlog
from limits import parse

from testgate.http.ratelimit import Bucket, Limiter, Windows
from testgate.http.settings import HttpSettings

MCP = "/organizations/acme/environments/dev/mcp"
WORKFLOWS = "/api/v1/organizations/acme/environments/dev/workflows"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_principal_over_its_limit_gets_429_with_retry_after_and_ratelimit_fields(live_server: Any) -> None:
    async with live_server(http=HttpSettings(rate_limit="3/hour", rate_limit_address="100/hour")) as live:
        token, other = await live.token(), await live.token()
        answers = [(await live.http.get(WORKFLOWS, headers=bearer(token))).status_code for _ in range(3)]
        refused = await live.http.get(WORKFLOWS, headers=bearer(token))
        on_mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, **bearer(token)})
        someone_else = await live.http.get(WORKFLOWS, headers=bearer(other))

    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "https://testgate.dev/problems/rate-limited"
    assert refused.json()["bucket"] == "principal"
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == refused.headers["retry-after"]
    assert refused.headers["ratelimit-policy"] == "3;w=3600"
    assert on_mcp.status_code == 429
    assert on_mcp.json()["error"]["code"] == -32000
    assert someone_else.status_code == 200


async def test_sign_in_and_token_endpoints_have_a_stricter_bucket_per_address(live_server: Any) -> None:
    async with live_server(http=HttpSettings(rate_limit_auth="2/hour")) as live:
        tries = [(await live.http.post("/oauth/token", data={"grant_type": "x"})).status_code for _ in range(3)]
        elsewhere = await live.http.get("/.well-known/oauth-authorization-server")

    assert 429 not in tries[:2]
    assert tries[2] == 429
    assert elsewhere.status_code == 200


@pytest.mark.parametrize("path", ["/oauth/revoke", "/invite"])
async def test_revocation_and_invitations_count_in_the_sign_in_bucket(live_server: Any, path: str) -> None:
    """/oauth/revoke checks client secrets and /invite one-time secrets: guesses are limited like sign-ins."""
    async with live_server(http=HttpSettings(rate_limit_auth="2/hour")) as live:
        tries = [(await live.http.post(path, data={"client_id": "x", "token": "y"})).status_code for _ in range(3)]

    assert 429 not in tries[:2]
    assert tries[2] == 429


async def test_only_requests_presenting_a_credential_count_in_the_sign_in_bucket(live_server: Any) -> None:
    """Opening the sign-in form (or being sent to it from the console) is no sign-in attempt."""
    async with live_server(http=HttpSettings(rate_limit_auth="2/hour")) as live:
        views = [(await live.http.get("/login?next=%2Fui")).status_code for _ in range(5)]
        redirects = [(await live.http.get("/ui/acme/dev/workflows")).status_code for _ in range(3)]
        posts = [(await live.http.post("/login", data={"email": "a@example.com"})).status_code for _ in range(3)]
        guesses = [(await live.http.get("/setup?token=guess")).status_code for _ in range(2)]

    assert views == [200] * 5
    assert redirects == [303] * 3
    assert 429 not in posts[:2]
    assert posts[2] == 429
    assert guesses == [429, 429]  # the link's one-time secret is in the query: a guess is a sign-in attempt


async def test_an_authorization_request_counts_in_the_sign_in_bucket(live_server: Any) -> None:
    """/oauth/authorize may fetch a client ID metadata document from a URL the caller names (CIMD): each
    request is limited like a sign-in, so the server cannot be made to fetch at the address bucket's rate."""
    async with live_server(http=HttpSettings(rate_limit_auth="2/hour")) as live:
        tries = [(await live.http.get("/oauth/authorize")).status_code for _ in range(3)]

    assert 429 not in tries[:2]
    assert tries[2] == 429


async def test_a_rate_limited_sign_in_form_post_gets_the_sign_in_page_saying_when_to_try_again(
    live_server: Any,
) -> None:
    async with live_server(http=HttpSettings(rate_limit_auth="1/hour")) as live:
        form = await live.http.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]*)"', form.text)
        assert csrf
        fields = {"email": "a@example.com", "password": "wrong", "csrf": html.unescape(csrf[1]), "next": "/ui"}
        tried = await live.http.post("/login", data=fields)
        refused = await live.http.post("/login", data=fields)
        scripted = await live.http.post("/login", json=fields)

    assert tried.status_code == 401
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert refused.headers["ratelimit-limit"] == "1"
    assert refused.headers["ratelimit-policy"] == "1;w=3600"
    assert refused.headers["content-security-policy"].startswith("default-src 'none'")
    assert f"Try again in {refused.headers['retry-after']} seconds." in refused.text
    assert '<form method="post" action="/login"' in refused.text
    assert scripted.status_code == 429
    assert scripted.headers["content-type"] == "application/problem+json"  # not a browser's form


async def test_requests_without_a_token_share_their_address_bucket(live_server: Any) -> None:
    async with live_server(http=HttpSettings(rate_limit_address="2/hour")) as live:
        answers = [(await live.http.get(WORKFLOWS)).status_code for _ in range(3)]
        probe = await live.http.get("/readyz")

    assert answers == [401, 401, 429]
    assert probe.status_code == 200  # probes are never limited


def test_the_principal_bucket_is_keyed_on_a_hash_of_the_token_never_the_token() -> None:
    limiter = Limiter(HttpSettings(), None)
    token = "tgp_" + "s" * 40
    scope = {
        "type": "http",
        "method": "GET",
        "path": WORKFLOWS,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }

    buckets = limiter.buckets({**scope, "client": ("2001:db8::7", 1)})

    assert [b.name for b in buckets] == ["principal", "address"]
    assert token not in buckets[0].key
    assert "s" * 8 not in buckets[0].key
    assert buckets[1].key == "2001:db8::/64"  # one IPv6 subscriber cannot rotate through its /64


def test_a_window_in_memory_opens_at_the_first_hit_refuses_until_its_end_then_starts_over() -> None:
    windows, item = Windows(), parse("2/minute")
    alice, bob = Bucket("principal", item, "alice"), Bucket("principal", item, "bob")

    spent = [windows.hit(alice, 1000.0), windows.hit(alice, 1010.0)]
    refused = windows.hit(alice, 1059.9)
    others = windows.hit(bob, 1059.9)
    again = windows.hit(alice, 1060.0)

    assert spent == [None, None]
    assert refused == 1060.0  # the window began with the first hit, not on the minute
    assert others is None
    assert again is None


def test_ended_windows_are_forgotten_so_rotating_keys_cannot_grow_memory_forever() -> None:
    windows, item = Windows(), parse("5/second")
    for n in range(1000):
        windows.hit(Bucket("address", item, f"10.0.{n // 256}.{n % 256}"), 1000.0)
    live = Bucket("address", item, "10.9.9.9")
    windows.hit(live, 1000.0 + Windows.PRUNE_EVERY)

    windows.prune(1000.0 + Windows.PRUNE_EVERY + 0.5)

    assert len(windows._windows) == 1  # only the window still open
    assert windows.hit(live, 1000.5 + Windows.PRUNE_EVERY) is None  # its count survived the pruning


@pytest.mark.redis
@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
async def test_redis_stopped_mid_run_follows_the_failure_policy(
    live_server: Any, throwaway_redis: Any, policy: str
) -> None:
    limits = HttpSettings(rate_limit="50/hour", redis_failure=policy, rate_limit_prefix=f"outage-{policy}")
    async with live_server(http=limits, redis_url=throwaway_redis.url) as live:
        token = await live.token()
        before = await live.http.get(WORKFLOWS, headers=bearer(token))
        ready_before = await live.http.get("/readyz")
        throwaway_redis.kill()
        with structlog.testing.capture_logs() as logged:
            during = await live.http.get(WORKFLOWS, headers=bearer(token))
            on_mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, **bearer(token)})
        ready_during = await live.http.get("/readyz")

    assert (before.status_code, ready_before.status_code) == (200, 200)
    assert ready_during.json()["checks"] == {"database": "ok", "redis": "unavailable"}
    # fail_open serves without Redis, so the replica stays in the load balancer (every replica shares the Redis).
    expected = (200, "degraded") if policy == "fail_open" else (503, "unavailable")
    assert (ready_during.status_code, ready_during.json()["status"]) == expected
    warnings = [e for e in logged if e["event"] == "rate limiting unavailable: Redis unreachable"]
    assert len(warnings) == 1  # once, not once per request
    assert warnings[0]["policy"] == policy
    if policy == "fail_open":
        assert (during.status_code, on_mcp.status_code) == (200, 200)
    else:
        assert during.status_code == 503
        assert during.json()["type"] == "https://testgate.dev/problems/rate-limit-unavailable"
        assert on_mcp.status_code == 503
        assert on_mcp.json()["error"]["code"] == -32000
