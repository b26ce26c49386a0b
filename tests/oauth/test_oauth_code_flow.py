"""The authorization code flow in-process: PKCE, redirect URIs, codes, and the tokens they become."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from testgate.access.principal import Permission
from testgate.access.verifier import verify_bearer
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow

CALLBACK = "http://127.0.0.1:3000/callback"
MCP = "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp"


def answer(response: httpx.Response) -> dict[str, str]:
    from urllib.parse import parse_qs, urlsplit

    assert response.status_code in (302, 303), response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


async def test_a_full_flow_issues_an_access_token_the_verifier_accepts_for_its_environment(
    flow: Any, make_user: Any, platform: Platform
) -> None:
    await make_user()
    client = await flow.register()
    tokens = await flow.tokens(client["client_id"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"].startswith("tgr_")
    assert tokens["scope"] == "testgate:read testgate:run"
    principal = await verify_bearer(platform, tokens["access_token"], source=None, resource=MCP)
    assert principal.kind == "oauth"
    assert principal.client_id == client["client_id"]
    assert principal.name == "ada@example.com"
    # Effective permission: min(scope cap run, the member's run grant).
    env_id = next(iter(principal.grants))
    assert principal.permission_in(env_id) == Permission.RUN
    async with platform.db.session() as session:
        actions = list(await session.scalars(select(AuditEventRow.action)))
    assert {"oauth.client_registered", "oauth.login", "oauth.consent_granted", "oauth.token_issued"} <= set(actions)
