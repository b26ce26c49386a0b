"""Bearer authentication and authorization over REST."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from testgate.access import tokens
from testgate.access.principal import Permission
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.tokens import ApiTokenRow

API = "/api/v1/organizations/acme/environments/dev"
PROBLEM = "application/problem+json"
MakeToken = Callable[..., Awaitable[str]]
Create = Callable[..., Awaitable[httpx.Response]]


async def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/workflows")

    assert response.status_code == 401
    # RFC 6750 §3: a request without credentials gets the challenge without an error code;
    # RFC 9728 §5.1: it names the environment's protected-resource metadata, and the scope to ask for.
    assert response.headers["www-authenticate"] == (
        'Bearer realm="testgate", resource_metadata="http://127.0.0.1:8080/.well-known/oauth-protected-resource'
        '/api/v1/organizations/acme/environments/dev", scope="testgate:read"'
    )
    # RFC 7807 §3: problem details.
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "https://testgate.dev/problems/unauthenticated"
    assert body["status"] == 401
    assert body["instance"] == f"{API}/workflows"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_authentication_comes_before_the_body_is_parsed(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/wait", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer tgp_notatoken",
        "Bearer " + tokens.PREFIX + "A" * 49,
        "Bearer " + tokens.generate(),
        "Basic dXNlcjpwYXNz",
        "Bearer",
    ],
    ids=["malformed", "bad-checksum", "unknown", "basic-scheme", "empty-bearer"],
)
async def test_a_bad_credential_is_refused_as_an_invalid_token(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get(f"{API}/workflows", headers={"Authorization": header})

    assert response.status_code == 401
    # RFC 6750 §3.1: invalid_token for credentials that were sent but are not valid.
    assert response.headers["www-authenticate"].startswith('Bearer realm="testgate", error="invalid_token"')
    assert response.headers["content-type"] == PROBLEM


async def _set_on_token(platform: Platform, secret: str, **values: object) -> None:
    async with platform.db.session() as session:
        await session.execute(
            update(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)).values(**values)
        )


@pytest.mark.parametrize(
    ("column", "message"), [("expires_at", "the token expired"), ("revoked_at", "the token was revoked")]
)
async def test_an_expired_or_revoked_token_is_refused(
    client: httpx.AsyncClient, platform: Platform, make_token: MakeToken, column: str, message: str
) -> None:
    secret = await make_token(expires_at=utcnow() + timedelta(hours=1))
    await _set_on_token(platform, secret, **{column: utcnow() - timedelta(seconds=1)})

    response = await client.get(f"{API}/workflows", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 401
    assert response.json()["detail"] == message
    assert f'error_description="{message}"' in response.headers["www-authenticate"]


async def test_a_token_records_when_and_from_where_it_was_last_used(
    client: httpx.AsyncClient, platform: Platform, make_token: MakeToken
) -> None:
    secret = await make_token()

    response = await client.get(f"{API}/labels", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 200
    async with platform.db.session() as session:
        row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
    assert row is not None
    assert row.last_used_at is not None
    assert row.last_used_from == "127.0.0.1"


async def test_a_member_token_with_read_can_list_workflows_but_not_run_one(
    client: httpx.AsyncClient, make_token: MakeToken, create_workflow: Create
) -> None:
    await create_workflow("smoke")
    reader = {"Authorization": f"Bearer {await make_token(permission=Permission.READ)}"}

    listed = await client.get(f"{API}/workflows", headers=reader)
    run = await client.post(f"{API}/workflows/smoke/executions", json={}, headers=reader)

    assert listed.status_code == 200
    assert [w["name"] for w in listed.json()["workflows"]] == ["smoke"]
    assert run.status_code == 403
    assert run.headers["content-type"] == PROBLEM
    problem = run.json()
    assert problem["type"] == "https://testgate.dev/problems/permission-denied"
    assert problem["required"] == "run"
    assert problem["held"] == "read"


async def test_another_organizations_token_finds_nothing_here(
    client: httpx.AsyncClient,
    platform: Platform,
    make_token: MakeToken,
    create_workflow: Create,
) -> None:
    await create_workflow("smoke")
    async with platform.db.session() as session:
        other = await tenancy.create_organization(session, "other")
        await tenancy.create_environment(session, other, "dev")
    outsider = {"Authorization": f"Bearer {await make_token(org='other')}"}

    response = await client.get(f"{API}/workflows/smoke", headers=outsider)

    # Another organization's resources answer as absent, never as forbidden.
    assert response.status_code == 404
    assert response.json()["type"] == "https://testgate.dev/problems/not-found"
