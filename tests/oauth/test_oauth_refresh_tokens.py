"""Refresh tokens rotate; reuse revokes the family (RFC 9700 §4.14.2); revocation per RFC 7009."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from testgate.access.verifier import verify_bearer
from testgate.errors import Unauthenticated
from testgate.oauth.settings import OAuthSettings
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow
from testgate.store.oauth import RefreshToken

MCP = "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp"


@pytest.fixture
def oauth_settings() -> OAuthSettings:
    return OAuthSettings(refresh_grace=0)


@pytest.fixture
async def client_id(flow: Any, make_user: Any) -> str:
    await make_user()
    return str((await flow.register())["client_id"])


async def rejected(platform: Platform, token: str) -> bool:
    try:
        await verify_bearer(platform, token, source=None, resource=MCP)
    except Unauthenticated:
        return True
    return False


async def test_a_refresh_rotates_the_refresh_token_and_keeps_the_scope(flow: Any, client_id: str) -> None:
    first = await flow.tokens(client_id)
    response = await flow.refresh(client_id, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]
    # RFC 6749 §6: a narrower scope may be asked for, never a wider one.
    narrower = await flow.refresh(client_id, second["refresh_token"], scope="testgate:read")
    assert narrower.status_code == 200
    assert narrower.json()["scope"] == "testgate:read"
    wider = await flow.refresh(client_id, narrower.json()["refresh_token"], scope="testgate:write")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    # RFC 6749 §6: the successor refresh token keeps the scope it had; only the access token was narrowed.
    again = await flow.refresh(client_id, narrower.json()["refresh_token"], scope="testgate:read testgate:run")
    assert again.status_code == 200, again.text
    assert again.json()["scope"] == first["scope"]


# RFC 9700 §4.14.2: presenting a rotated-out refresh token revokes the whole family.
async def test_reusing_a_refresh_token_revokes_the_whole_family(flow: Any, client_id: str, platform: Platform) -> None:
    first = await flow.tokens(client_id)
    second = (await flow.refresh(client_id, first["refresh_token"])).json()
    assert not await rejected(platform, second["access_token"])
    reuse = await flow.refresh(client_id, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # The legitimate holder's newest tokens die with the family: the thief can't tell which one is live.
    assert (await flow.refresh(client_id, second["refresh_token"])).json()["error"] == "invalid_grant"
    assert await rejected(platform, second["access_token"])
    assert await rejected(platform, first["access_token"])
    async with platform.db.session() as session:
        actions = set(await session.scalars(select(AuditEventRow.action)))
    assert "oauth.refresh_reuse_detected" in actions


# RFC 9700 §4.14.2 permits a grace period: a concurrent duplicate is refused without revoking the family.
async def test_a_duplicate_inside_the_grace_window_is_refused_but_keeps_the_family(
    flow: Any, client_id: str, platform: Platform
) -> None:
    first = await flow.tokens(client_id)
    second = (await flow.refresh(client_id, first["refresh_token"])).json()
    async with platform.db.session() as session:
        await session.execute(update(RefreshToken).values(used_at=utcnow()).where(RefreshToken.used_at.is_not(None)))
    platform.settings.oauth.refresh_grace = 30
    late = await flow.refresh(client_id, first["refresh_token"])
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"
    assert (await flow.refresh(client_id, second["refresh_token"])).status_code == 200


# RFC 6749 §6 / RFC 9700 §4.14.2: refresh tokens are bound to their client.
async def test_a_refresh_token_presented_by_another_client_is_refused(flow: Any, client_id: str) -> None:
    tokens = await flow.tokens(client_id)
    other = (await flow.register(client_name="Other"))["client_id"]
    response = await flow.refresh(other, tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await flow.refresh(client_id, tokens["refresh_token"])).status_code == 200


async def test_an_expired_refresh_token_is_refused(flow: Any, client_id: str, platform: Platform) -> None:
    tokens = await flow.tokens(client_id)
    async with platform.db.session() as session:
        await session.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await flow.refresh(client_id, tokens["refresh_token"])).json()["error"] == "invalid_grant"


# RFC 8707 §2.2: a refresh can't move the token to another environment.
async def test_a_refresh_cannot_change_the_resource(flow: Any, client_id: str) -> None:
    tokens = await flow.tokens(client_id)
    other = "http://127.0.0.1:8080/organizations/acme/environments/prod/mcp"
    response = await flow.refresh(client_id, tokens["refresh_token"], resource=other)
    assert response.json()["error"] == "invalid_target"


# RFC 7009 §2.1: revoking a refresh token revokes its grant, access tokens included.
async def test_revoking_a_refresh_token_revokes_its_family(flow: Any, client_id: str, platform: Platform) -> None:
    tokens = await flow.tokens(client_id)
    response = await flow.http.post("/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": client_id})
    assert response.status_code == 200
    assert await rejected(platform, tokens["access_token"])
    assert (await flow.refresh(client_id, tokens["refresh_token"])).json()["error"] == "invalid_grant"


# RFC 7009 §2.1: an access token is revoked by deny-listing its jti until it expires.
async def test_revoking_an_access_token_deny_lists_it(flow: Any, client_id: str, platform: Platform) -> None:
    tokens = await flow.tokens(client_id)
    data = {"token": tokens["access_token"], "token_type_hint": "access_token", "client_id": client_id}
    assert (await flow.http.post("/oauth/revoke", data=data)).status_code == 200
    assert await rejected(platform, tokens["access_token"])
    # The refresh token lives on and gives a fresh access token.
    assert (await flow.refresh(client_id, tokens["refresh_token"])).status_code == 200
    # Audited like a refresh token's revocation, in the organization and environment the token was for.
    async with platform.db.session() as session:
        revoked = select(AuditEventRow).where(AuditEventRow.action == "oauth.token_revoked")
        (event,) = list(await session.scalars(revoked))
    assert (event.outcome, event.actor_id, event.arguments) == ("allowed", client_id, {"kind": "access_token"})
    assert event.environment_id is not None
    assert tokens["access_token"] not in str(event.arguments)


# RFC 7009 §2.1-2.2: a client may only revoke its own tokens, and unknown tokens answer 200 all the same.
async def test_revocation_answers_200_for_unknown_and_foreign_tokens_without_revoking_them(
    flow: Any, client_id: str, client: httpx.AsyncClient, platform: Platform
) -> None:
    tokens = await flow.tokens(client_id)
    other = (await flow.register(client_name="Other"))["client_id"]
    for token in ("tgr_nonsense", "a.b.c", tokens["refresh_token"], tokens["access_token"]):
        response = await client.post("/oauth/revoke", data={"token": token, "client_id": other})
        assert response.status_code == 200, token
    assert not await rejected(platform, tokens["access_token"])
    missing = await client.post("/oauth/revoke", data={"client_id": other})
    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"


async def _as_owner(platform: Platform, name: str, args: dict[str, Any]) -> Any:
    from testgate.access.principal import local_owner
    from testgate.operations.context import Call
    from testgate.operations.dispatch import dispatch
    from testgate.platform import tenancy

    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
    return await dispatch(platform, Call(local_owner(org.id), "acme", None, confirm=_yes), name, args)


async def _yes(message: str) -> Any:
    return "explicit"


@pytest.mark.parametrize("how", ["removed", "grant withdrawn"])
async def test_taking_a_person_out_ends_their_oauth_grants_for_good(
    flow: Any, client_id: str, platform: Platform, how: str
) -> None:
    # RFC 9700 §4.14.2 / SECURITY.md: a removed person's credentials end, as their API tokens do. A refresh
    # token that only failed while they were out worked again once they were added back, and the
    # remembered consent issued new codes without asking.
    tokens = await flow.tokens(client_id)
    if how == "removed":
        await _as_owner(platform, "member.remove", {"user": "ada@example.com"})
        await _as_owner(platform, "member.invite", {"email": "ada@example.com", "environments": {"dev": "run"}})
    else:
        await _as_owner(platform, "member.grant", {"user": "ada@example.com", "environments": {"dev": "none"}})
        await _as_owner(platform, "member.grant", {"user": "ada@example.com", "environments": {"dev": "run"}})

    assert await rejected(platform, tokens["access_token"])
    refreshed = await flow.refresh(client_id, tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    page = await flow.authorize(flow.params(client_id))  # still signed in: consent is asked again
    assert page.status_code == 200
    assert 'name="decision"' in page.text
