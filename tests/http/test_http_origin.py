"""Every entry point records where a request came from the same way (``testgate.http.origin``): the request
id the front door assigned, the peer's address and the user agent, cut to the audit column's width."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from testgate.http.origin import MAX_USER_AGENT
from testgate.store.audit import AuditEventRow

API = "/api/v1/organizations/acme/environments/dev"
MCP = "/organizations/acme/environments/{env}/mcp"
STATELESS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/call",
    "Mcp-Name": "list_labels",
}


def _tools_call(name: str = "list_labels") -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "origin-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": {}, "_meta": meta}}


async def _events(live: Any) -> dict[str, AuditEventRow]:
    async with live.platform.db.session() as session:
        rows = await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq))
        return {row.request_id: row for row in rows if row.request_id}


async def test_rest_mcp_and_oauth_events_carry_the_request_id_address_and_user_agent(live_server: Any) -> None:
    async with live_server() as live:
        token = await live.token()
        bearer = {"Authorization": f"Bearer {token}"}

        def sent(request_id: str) -> dict[str, str]:
            return {"X-Request-ID": request_id, "User-Agent": f"agent-{request_id}/1.0"}

        rest = await live.http.get(f"{API}/labels", headers={**bearer, **sent("o-rest")})
        tool = await live.http.post(
            MCP.format(env="dev"), json=_tools_call(), headers={**STATELESS, **bearer, **sent("o-mcp")}
        )
        elsewhere = MCP.format(env="nowhere")
        refused = await live.http.post(elsewhere, json=_tools_call(), headers={**STATELESS, **bearer, **sent("o-door")})
        registered = await live.http.post(
            "/oauth/register",
            json={"client_name": "origin", "redirect_uris": ["http://127.0.0.1:9/cb"]},
            headers=sent("o-oauth"),
        )
        long_agent = {"X-Request-ID": "o-long", "User-Agent": "x" * 5000}
        long = await live.http.get(f"{API}/labels", headers={**bearer, **long_agent})
        events = await _events(live)

    assert (rest.status_code, tool.status_code, refused.status_code, registered.status_code) == (200, 200, 404, 201)
    assert long.status_code == 200
    expected = {
        "o-rest": ("label.list", "rest", "allowed"),
        "o-mcp": ("label.list", "mcp-http", "allowed"),
        "o-door": ("mcp.request", "mcp-http", "denied"),
        "o-oauth": ("oauth.client_registered", "rest", "allowed"),
    }
    for request_id, (action, transport, outcome) in expected.items():
        event = events[request_id]
        assert (event.action, event.transport, event.outcome) == (action, transport, outcome), request_id
        assert (event.source_address, event.user_agent) == ("127.0.0.1", f"agent-{request_id}/1.0"), request_id
    assert events["o-long"].user_agent == "x" * MAX_USER_AGENT
