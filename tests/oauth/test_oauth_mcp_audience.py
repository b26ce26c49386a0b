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


async def test_a_session_outlives_the_refresh_of_its_access_token_and_stays_its_persons(
    live_server: Any, oauth_flow: Any
) -> None:
    """MCP sessions are bound to the principal that opened it: a person and a client, not one access token."""
    async with live_server() as live:
        await live.add_user()
        await live.add_user("bob@example.com")
        async with httpx.AsyncClient(base_url=live.base, timeout=30) as http:
            flow = oauth_flow(http, live.base)
            client_id = (await flow.register())["client_id"]
            first = await flow.tokens(client_id)
            opened = await http.post(
                live.url("dev"), json=INITIALIZE, headers={**ACCEPT, "Authorization": f"Bearer {first['access_token']}"}
            )
            assert opened.status_code == 200, opened.text
            session_id = opened.headers["mcp-session-id"]
            refreshed = (await flow.refresh(client_id, first["refresh_token"])).json()
            assert refreshed["access_token"] != first["access_token"]
            listed = await _tools_in(http, live.url("dev"), refreshed["access_token"], session_id)
            async with httpx.AsyncClient(base_url=live.base, timeout=30) as bobs_browser:  # signed in as bob
                someone_else = await oauth_flow(bobs_browser, live.base).tokens(client_id, "bob@example.com")
            taken = await _tools_in(http, live.url("dev"), someone_else["access_token"], session_id)
    assert listed.status_code == 200, listed.text
    assert "run_workflow" in listed.text
    assert taken.status_code == 404  # another person's session does not exist for them


async def _tools_in(http: httpx.AsyncClient, url: str, token: str, session_id: str) -> httpx.Response:
    """``tools/list`` in session ``session_id`` with ``token`` (2025-11-25 era)."""
    headers = {**ACCEPT, "Authorization": f"Bearer {token}", "Mcp-Session-Id": session_id}
    return await http.post(
        url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        headers={**headers, "MCP-Protocol-Version": "2025-11-25"},
    )
