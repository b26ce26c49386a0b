"""Two ``testgate serve`` processes on one PostgreSQL and one Redis: limits, revocations, MCP and keys are shared.

2025-era MCP sessions live in the process that opened them (the load balancer routes on ``Mcp-Session-Id``,
see docs/deployment.md); everything tested here needs no affinity.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ElicitResult, InputRequiredResult
from sqlalchemy import select
from tests.conftest import _drop_postgres_database, _postgres_database, require_redis

from testgate.access import tokens
from testgate.access.principal import Role
from testgate.platform import tenancy
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade
from testgate.store.oauth import SigningKey

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REDIS = "redis://127.0.0.1:6379/0"
LIMIT = 12  # requests per principal per hour, shared by both replicas
WORKFLOWS = "/api/v1/organizations/acme/environments/dev/workflows"
MCP = "/organizations/acme/environments/dev/mcp"
FLOW = "kind: TestWorkflow\nmetadata: {name: doomed}\nspec:\n  steps:\n    - name: greet\n      shell: echo hello\n"
YES = ElicitResult(action="accept", content={"confirm": True})


@dataclass
class Cluster:
    """Two replicas and API tokens issued on their shared database: ``tokens[i]`` is (secret, id)."""

    a: str
    b: str
    tokens: list[tuple[str, str]]
    database_url: str


async def _prepare(url: str, count: int) -> list[tuple[str, str]]:
    """Migrate the database and create the organization once, before any replica starts (no startup race)."""
    db = Database(create_engine(url))
    try:
        await upgrade(db.engine)
        async with db.session() as session:
            org = (await tenancy.bootstrap(session, "acme", "dev")).organization
        issued = []
        for index in range(count):
            async with db.session() as session:
                token = await tokens.issue(
                    session,
                    organization_id=org.id,
                    name=f"replica-test-{index}",
                    role=Role.ADMIN,
                    grants={},
                    created_by=None,
                    expires_at=None,
                )
            issued.append((token.secret, token.row.id))
        return issued
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def cluster(module_spawn: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_redis()
    url = asyncio.run(_postgres_database())
    try:
        issued = asyncio.run(_prepare(url, 6))
        secrets_dir = tmp_path_factory.mktemp("secrets")
        state_key, signing = secrets_dir / "mcp_state_key", secrets_dir / "oauth_key_secret"
        state_key.write_text(secrets.token_hex(32) + "\n")
        signing.write_text(secrets.token_urlsafe(32) + "\n")
        shared = {
            "TESTGATE_DATABASE_URL": url,
            "TESTGATE_REDIS_URL": REDIS,
            "TESTGATE_HTTP__RATE_LIMIT": f"{LIMIT}/hour",
            "TESTGATE_HTTP__RATE_LIMIT_ADDRESS": "100000/hour",
            "TESTGATE_HTTP__RATE_LIMIT_PREFIX": f"replicas-{secrets.token_hex(4)}",
            "TESTGATE_DEFAULT_ORGANIZATION": "acme",
            "TESTGATE_MCP_STATE_KEY_FILE": str(state_key),
            "TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET_FILE": str(signing),
            "TESTGATE_LOG_LEVEL": "WARNING",
        }
        a, b = (
            module_spawn({**shared, "TESTGATE_DATA_DIR": str(tmp_path_factory.mktemp(name))}) for name in ("a", "b")
        )
        yield Cluster(a.base, b.base, issued, url)
        module_spawn.stop_all()
    finally:
        asyncio.run(_drop_postgres_database(url))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_rate_limit_is_shared_by_both_replicas_through_redis(cluster: Cluster) -> None:
    token, _ = cluster.tokens[0]
    async with httpx.AsyncClient(timeout=10) as http:
        spent = [
            (await http.get(base + WORKFLOWS, headers=bearer(token))).status_code
            for base in itertools.islice(itertools.cycle([cluster.a, cluster.b]), LIMIT)
        ]
        over_a = await http.get(cluster.a + WORKFLOWS, headers=bearer(token))
        over_b = await http.get(cluster.b + WORKFLOWS, headers=bearer(token))
        fresh = await http.get(cluster.b + WORKFLOWS, headers=bearer(cluster.tokens[1][0]))

    assert spent == [200] * LIMIT  # half on each replica
    assert (over_a.status_code, over_b.status_code) == (429, 429)
    assert over_b.headers["ratelimit-limit"] == str(LIMIT)
    assert fresh.status_code == 200


async def test_a_token_revoked_on_one_replica_is_refused_by_the_other_at_once(cluster: Cluster) -> None:
    admin, _ = cluster.tokens[2]
    doomed, doomed_id = cluster.tokens[3]
    async with httpx.AsyncClient(timeout=10) as http:
        before = await http.get(cluster.b + WORKFLOWS, headers=bearer(doomed))
        revoked = await http.delete(f"{cluster.a}/api/v1/organizations/acme/tokens/{doomed_id}", headers=bearer(admin))
        after = await http.get(cluster.b + WORKFLOWS, headers=bearer(doomed))

    assert before.status_code == 200
    assert revoked.status_code == 200, revoked.text
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


class Balancer(httpx2.AsyncBaseTransport):
    """A load balancer without affinity: each request goes to the next replica, or to the one ``pin`` names."""

    def __init__(self, bases: list[str]) -> None:
        self.targets = itertools.cycle([httpx2.URL(base) for base in bases])
        self.pinned: httpx2.URL | None = None
        self.inner = httpx2.AsyncHTTPTransport()
        self.served: list[str] = []

    def pin(self, base: str) -> None:
        self.pinned = httpx2.URL(base)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        target = self.pinned or next(self.targets)
        request.url = request.url.copy_with(host=target.host, port=target.port)
        self.served.append(f"{target.host}:{target.port}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def modern_client(cluster: Cluster, token: str, balancer: Balancer) -> AsyncIterator[Client]:
    """An SDK client speaking 2026-07-28 (stateless: no session to route on) through ``balancer``."""
    async with httpx2.AsyncClient(transport=balancer, headers=bearer(token), timeout=30) as http:
        transport = streamable_http_client(cluster.a + MCP, http_client=http)
        async with Client(transport, mode="2026-07-28", elicitation_callback=_yes) as client:
            yield client


async def _yes(context: Any, params: Any) -> ElicitResult:
    return YES


async def test_2026_era_tool_calls_are_served_by_either_replica(cluster: Cluster) -> None:
    balancer = Balancer([cluster.a, cluster.b])
    async with modern_client(cluster, cluster.tokens[4][0], balancer) as client:
        results = [await client.call_tool("list_workflows", {}) for _ in range(4)]

    assert all(r.structured_content == {"workflows": [], "count": 0} for r in results)
    assert {cluster.a.split("//")[1], cluster.b.split("//")[1]} <= set(balancer.served)


async def test_a_2026_confirmation_asked_by_one_replica_is_answered_on_the_other_once(cluster: Cluster) -> None:
    # The request state is sealed with the shared key (TESTGATE_MCP_STATE_KEY_FILE), so the other replica
    # opens it; the one-shot nonce inside is kept in the shared Redis (mcp.confirm.RedisLedger), so the
    # other replica redeems it - once: the same answer replayed to either replica is asked anew.
    balancer = Balancer([cluster.a, cluster.b])
    args = {"name": "doomed"}
    async with modern_client(cluster, cluster.tokens[5][0], balancer) as client:
        balancer.pin(cluster.a)
        await client.call_tool("create_workflow", {"definition": FLOW})
        asked = await client.session.call_tool("delete_workflow", args, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        balancer.pin(cluster.b)
        answer = {"confirm": YES}
        done = await client.session.call_tool(
            "delete_workflow",
            args,
            input_responses=answer,
            request_state=asked.request_state,
            allow_input_required=True,
        )
        assert isinstance(done, CallToolResult)
        assert done.structured_content["deleted"] is True
        await client.call_tool("create_workflow", {"definition": FLOW})
        replays = []
        for replica in (cluster.a, cluster.b):
            balancer.pin(replica)
            replays.append(
                await client.session.call_tool(
                    "delete_workflow",
                    args,
                    input_responses=answer,
                    request_state=asked.request_state,
                    allow_input_required=True,
                )
            )
        still_there = await client.call_tool("list_workflows", {})

    assert all(isinstance(r, InputRequiredResult) for r in replays)
    assert still_there.structured_content["count"] == 1


async def test_both_replicas_publish_the_same_signing_keys(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        first = (await http.get(cluster.a + "/oauth/jwks.json")).json()
        second = (await http.get(cluster.b + "/oauth/jwks.json")).json()

    assert first["keys"]
    assert first == second


async def test_signing_keys_are_encrypted_with_the_secret_both_replicas_read_from_a_file(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(cluster.a + "/oauth/jwks.json")
    db = Database(create_engine(cluster.database_url))
    try:
        async with db.session() as session:
            encrypted = list(await session.scalars(select(SigningKey.encrypted)))
    finally:
        await db.dispose()

    assert encrypted
    assert all(encrypted)  # TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET_FILE reached both processes
