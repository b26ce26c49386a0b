"""U+0000 in what a request names (a slug, a client id, a sign-in address) is an ordinary refusal on
PostgreSQL, which can neither compare nor store text holding it: each of these was a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from testgate.access import tokens
from testgate.access.principal import Role
from testgate.app import create_app
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow

pytestmark = pytest.mark.postgres
BASE = "http://127.0.0.1:8080"  # the default public URL: an allowed Host without settings


@pytest.fixture
async def http(postgres_platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with postgres_platform.db.session() as session:  # where sign-in events go
        await tenancy.bootstrap(session, postgres_platform.settings.default_organization, "dev")
    app = create_app(postgres_platform.settings, platform=postgres_platform)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


async def _token(platform: Platform) -> str:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        issued = await tokens.issue(
            session, organization_id=org.id, name="admin", role=Role.ADMIN, grants={}, created_by=None, expires_at=None
        )
    return issued.secret


async def test_a_slug_holding_nul_is_not_found_on_rest_mcp_and_the_console(
    postgres_platform: Platform, http: httpx.AsyncClient
) -> None:
    bearer = {"Authorization": f"Bearer {await _token(postgres_platform)}"}
    rest_org = await http.get("/api/v1/organizations/ac%00me/environments/dev/workflows", headers=bearer)
    rest_env = await http.get("/api/v1/organizations/acme/environments/d%00ev/workflows", headers=bearer)
    rest_name = await http.get("/api/v1/organizations/acme/environments/dev/workflows/a%00b", headers=bearer)
    mcp = await http.post(
        "/organizations/acme/environments/d%00ev/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={**bearer, "Accept": "application/json, text/event-stream"},
    )

    assert (rest_org.status_code, rest_env.status_code, mcp.status_code) == (404, 404, 404)
    assert rest_name.status_code == 422
    assert rest_name.json()["errors"] == [{"path": "name", "message": "must not contain the NUL character (U+0000)"}]


async def test_oauth_refuses_a_client_id_holding_nul_as_an_unknown_client(http: httpx.AsyncClient) -> None:
    token = await http.post(
        "/oauth/token", data={"grant_type": "refresh_token", "client_id": "tgc_\x00", "refresh_token": "x"}
    )
    revoke = await http.post("/oauth/revoke", data={"token": "x", "client_id": "tgc_\x00"})
    authorize = await http.get("/oauth/authorize", params={"client_id": "tgc_\x00", "response_type": "code"})

    assert (token.status_code, token.json()["error"]) == (401, "invalid_client")
    assert (revoke.status_code, revoke.json()["error"]) == (401, "invalid_client")
    assert authorize.status_code == 400
    assert "not registered" in authorize.text


async def test_signing_in_with_an_address_holding_nul_fails_like_an_unknown_one_and_is_audited(
    postgres_platform: Platform, http: httpx.AsyncClient
) -> None:
    form = await http.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    answer = await http.post(
        "/login", data={"email": "ada\x00@example.com", "password": "pw", "csrf": found.group(1), "next": "/ui"}
    )
    async with postgres_platform.db.session() as session:
        events: list[Any] = list(
            await session.scalars(select(AuditEventRow).where(AuditEventRow.action == "console.login"))
        )

    assert answer.status_code == 401
    [event] = events
    assert (event.outcome, event.actor_name) == ("denied", "ada\ufffd@example.com")
