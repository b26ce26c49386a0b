"""Through the real MCP endpoint: an access token works only at the environment it was issued for.

MCP authorization "Token Audience Binding and Validation" / RFC 8707: a token for environment A presented
at environment B is refused with 401 invalid_token. The endpoint (``mcp/guard.py``) must hand its own URL
to ``verify_bearer(resource=...)``.
"""

from __future__ import annotations

from typing import Any

import httpx

from testgate.platform import tenancy

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


async def test_a_token_for_one_environment_is_refused_at_another_through_the_mcp_endpoint(
    live_server: Any, oauth_flow: Any
) -> None:
    async with live_server() as live:
        await live.add_user()
        async with live.platform.db.session() as session:
            org = await tenancy.organization_by_slug(session, "acme")
            await tenancy.create_environment(session, org, "staging")
        async with httpx.AsyncClient(base_url=live.base, timeout=30) as http:
            flow = oauth_flow(http, live.base)
            client_id = (await flow.register())["client_id"]
            tokens = await flow.tokens(client_id)
            bearer = {**ACCEPT, "Authorization": f"Bearer {tokens['access_token']}"}
            home = await http.post(live.url("dev"), json=INITIALIZE, headers=bearer)
            assert home.status_code == 200, home.text
            away = await http.post(live.url("staging"), json=INITIALIZE, headers=bearer)
            assert away.status_code == 401
            challenge = away.headers["www-authenticate"]
            assert 'error="invalid_token"' in challenge
            assert "resource_metadata=" in challenge
