"""The hosted door: bearer auth, environment scoping and session binding on every request, DNS rebinding."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.sse import sse_client
from sqlalchemy import select, update

from testgate.access.principal import Permission
from testgate.operations.registry import agent_tools
from testgate.platform import tenancy
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow
from testgate.store.tokens import ApiTokenRow

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


@pytest.fixture
async def raw(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base, timeout=10) as client:
        yield client


@pytest.fixture
async def staging(live: Any) -> str:
    async with live.platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        await tenancy.create_environment(session, org, "staging")
    return "staging"


def bearer(token: str, session: str | None = None) -> dict[str, str]:
    headers = {**ACCEPT, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-11-25"}
    if session is not None:
        headers["Mcp-Session-Id"] = session
    return headers


async def open_session(raw: httpx.AsyncClient, path: str, token: str) -> str:
    """A 2025-11-25 session opened with a raw initialize; returns its Mcp-Session-Id."""
    response = await raw.post(path, json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await raw.post(path, json=initialized, headers=bearer(token, session))).status_code == 202
    return session


def mcp_path(env: str = "dev") -> str:
    return f"/organizations/acme/environments/{env}/mcp"


# MCP authorization §2.3 / RFC 9728 §5.1: a 401 names the protected-resource metadata.
async def test_a_request_without_a_token_gets_401_with_the_resource_metadata(raw: httpx.AsyncClient) -> None:
    response = await raw.post(mcp_path(), json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="testgate"')
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code without credentials
    expected = "/.well-known/oauth-protected-resource/organizations/acme/environments/dev/mcp"
    assert f'resource_metadata="http://127.0.0.1:8080{expected}"' in challenge


@pytest.mark.parametrize(
    "token",
    [
        "tgp_not-a-real-token",
        # a JWT whose header is JSON nested past the parser's depth: a RecursionError, not a ValueError
        base64.urlsafe_b64encode(b"[" * 2000 + b"]" * 2000).decode().rstrip("=") + ".e30.c2ln",
    ],
)
async def test_an_invalid_token_gets_401_invalid_token_on_every_transport(raw: httpx.AsyncClient, token: str) -> None:
    bad = {**ACCEPT, "Authorization": f"Bearer {token}"}
    for path in (mcp_path(), "/organizations/acme/environments/dev/sse"):
        response = await raw.request("POST" if path.endswith("mcp") else "GET", path, json=INITIALIZE, headers=bad)
        assert response.status_code == 401, path
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_revoked_token_is_refused_on_the_next_request_of_its_session(
    raw: httpx.AsyncClient, live: Any, admin: str
) -> None:
    session = await open_session(raw, mcp_path(), admin)
    assert (await raw.post(mcp_path(), json=LIST, headers=bearer(admin, session))).status_code == 200
    async with live.platform.db.session() as db:
        await db.execute(update(ApiTokenRow).values(revoked_at=utcnow()))
    response = await raw.post(mcp_path(), json=LIST, headers=bearer(admin, session))
    assert response.status_code == 401


async def test_a_session_opened_by_one_token_is_refused_to_another(
    raw: httpx.AsyncClient, admin: str, issue: Any
) -> None:
    other = await issue(name="other")
    session = await open_session(raw, mcp_path(), admin)
    response = await raw.post(mcp_path(), json=LIST, headers=bearer(other, session))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"
    assert (await raw.post(mcp_path(), json=LIST, headers=bearer(admin, session))).status_code == 200


async def test_a_session_opened_under_one_environment_is_refused_under_another(
    raw: httpx.AsyncClient, admin: str, staging: str
) -> None:
    session = await open_session(raw, mcp_path("dev"), admin)
    response = await raw.post(mcp_path(staging), json=LIST, headers=bearer(admin, session))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Session not found"


async def test_an_environment_without_a_grant_answers_not_found_and_is_audited(
    raw: httpx.AsyncClient, issue: Any, staging: str, live: Any
) -> None:
    dev_reader = await issue(Permission.READ, env="dev")
    response = await raw.post(
        mcp_path(staging), json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {dev_reader}"}
    )
    assert response.status_code == 404
    missing = await raw.post(
        mcp_path("nowhere"), json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {dev_reader}"}
    )
    assert missing.status_code == 404
    # DESIGN, Audit: every denied call leaves an event (here in the caller's own organization).
    async with live.platform.db.session() as session:
        refused = select(AuditEventRow).where(AuditEventRow.action == "mcp.request").order_by(AuditEventRow.seq)
        events = list(await session.scalars(refused))
    assert [(e.outcome, e.actor_type, e.transport) for e in events] == [("denied", "api_token", "mcp-http")] * 2
    assert [e.arguments["environment"] for e in events] == [staging, "nowhere"]
    assert events[1].reason == "environment 'nowhere' not found in organization 'acme'"


# MCP transports, security warning: servers MUST validate Origin; Host is checked against DNS rebinding.
@pytest.mark.parametrize(
    ("header", "value", "status"),
    [("Host", "evil.example:8080", 421), ("Origin", "http://evil.example", 403)],
)
async def test_dns_rebinding_is_refused_before_authentication(
    raw: httpx.AsyncClient, admin: str, header: str, value: str, status: int
) -> None:
    headers = {**ACCEPT, "Authorization": f"Bearer {admin}", header: value}
    response = await raw.post(mcp_path(), json=INITIALIZE, headers=headers)
    assert response.status_code == status


async def test_the_legacy_sse_transport_serves_tools_as_mcp_sse(live: Any, admin: str) -> None:
    transport = sse_client(live.url(endpoint="sse"), headers={"Authorization": f"Bearer {admin}"})
    async with Client(transport) as client:
        listing = await client.list_tools()
        result = await client.call_tool("list_workflows", {})
    assert len(listing.tools) == len(agent_tools())
    assert result.structured_content == {"workflows": [], "count": 0}
    async with live.platform.db.session() as session:
        event = await session.scalar(select(AuditEventRow).where(AuditEventRow.action == "workflow.list"))
    assert event is not None
    assert event.transport == "mcp-sse"


async def test_a_legacy_sse_session_is_bound_to_its_token_and_environment(
    live: Any, admin: str, issue: Any, staging: str
) -> None:
    other = await issue(name="other")
    message = json.dumps(LIST)
    async with httpx2.AsyncClient(base_url=live.base, timeout=10) as http:
        headers = {"Authorization": f"Bearer {admin}", "Accept": "text/event-stream"}
        async with http.stream("GET", "/organizations/acme/environments/dev/sse", headers=headers) as stream:
            lines = stream.aiter_lines()  # held open: finalizing the iterator would close the stream
            endpoint = await _endpoint(lines)
            post = {"Content-Type": "application/json"}
            elsewhere = endpoint.replace("/environments/dev/", f"/environments/{staging}/")
            by_other = await http.post(endpoint, content=message, headers={**post, "Authorization": f"Bearer {other}"})
            moved = await http.post(elsewhere, content=message, headers={**post, "Authorization": f"Bearer {admin}"})
            own = await http.post(endpoint, content=message, headers={**post, "Authorization": f"Bearer {admin}"})
    assert (by_other.status_code, moved.status_code) == (404, 404)
    assert own.status_code == 202


async def _endpoint(lines: Any) -> str:
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:") and event == "endpoint":
            return str(line.partition(":")[2].strip())
    raise AssertionError("the SSE stream sent no endpoint event")


def test_a_callers_key_tells_every_identity_and_environment_apart() -> None:
    """Sessions and confirmations are bound to ``Caller.key``: no two callers may share one."""
    from testgate.access.principal import Principal, Role
    from testgate.mcp.caller import Caller

    def key(environment: str = "dev", **fields: Any) -> str:
        values: dict[str, Any] = {"kind": "token", "id": "t1", "name": "ci", "organization_id": "o1"}
        values.update(fields)
        return Caller(Principal(role=Role.MEMBER, **values), "acme", environment, "mcp-http").key

    keys = [
        key(),
        key(environment="prod"),
        key(id="t2"),
        key(kind="user"),
        key(organization_id="o2"),
        key(user_id="None"),  # the string, not the absent user
        key(user_id="u1"),
        key(client_id="c1"),
        key(id="t1', 'x"),  # quotes inside a value cannot forge another tuple
    ]
    assert len(set(keys)) == len(keys)
    assert key() == key(name="another name")  # the display name is not part of the identity
