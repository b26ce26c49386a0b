"""Tokens and members over REST: ``/api/v1/organizations/{org}/tokens`` and ``/members``.

Bearer credentials are API tokens until OAuth access tokens join ``verify_bearer``; a person's call
(the console's, or an OAuth client's) is made by replacing the route's ``Call`` after authentication.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import select

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.api.access import org_call
from testgate.api.context import Org
from testgate.operations.context import Call
from testgate.store.tenancy import User

from .conftest import ORG, Mint, People, bearer

AsPerson = Callable[[str], Awaitable[None]]


@pytest.fixture
async def team(people: People) -> People:
    await people.add("olive@acme.test", Role.OWNER)
    await people.add("mia@acme.test", Role.MEMBER, dev=Permission.RUN)
    return people


@pytest.fixture
async def owner_token(team: People, mint: Mint) -> dict[str, str]:
    """An admin token created by the owner."""
    return bearer(await mint("olive@acme.test", role="admin", name="owner-admin"))


@pytest.fixture
def as_person(app: FastAPI, team: People) -> AsPerson:
    """Make the next requests (still bearer-authenticated) act as the person ``email``."""

    async def use(email: str) -> None:
        principal = await team.principal(email)

        async def person_call(request: Request, org: Org) -> Call:
            return Call(principal=principal, organization=org, transport="rest", source_address="127.0.0.1")

        app.dependency_overrides[org_call] = person_call

    return use


async def test_creating_a_token_answers_201_with_the_secret_once_and_uncached(
    client: httpx.AsyncClient, owner_token: dict[str, str], as_person: AsPerson
) -> None:
    await as_person("olive@acme.test")
    body = {"name": "ci", "environments": {"dev": "run"}, "expires": "P30D", "labels": {"team": "qa"}}

    response = await client.post(f"{ORG}/tokens", json=body, headers=owner_token)

    assert response.status_code == 201, response.text
    created = response.json()
    assert tokens.well_formed(created["secret"])
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["location"] == f"{ORG}/tokens/{created['token']['id']}"
    assert created["token"]["grants"] == {"dev": "run"}
    listed = await client.get(f"{ORG}/tokens", headers=owner_token)
    assert created["secret"] not in listed.text
    assert [t["name"] for t in listed.json()["tokens"]] == ["owner-admin", "ci"]


async def test_an_api_token_cannot_create_a_token(client: httpx.AsyncClient, owner_token: dict[str, str]) -> None:
    response = await client.post(f"{ORG}/tokens", json={"name": "child", "role": "admin"}, headers=owner_token)

    assert response.status_code == 403
    assert "API tokens cannot create or rotate tokens" in response.json()["detail"]


async def test_a_bad_expiry_is_a_422_naming_the_field(
    client: httpx.AsyncClient, owner_token: dict[str, str], as_person: AsPerson
) -> None:
    await as_person("olive@acme.test")

    response = await client.post(
        f"{ORG}/tokens", json={"name": "x", "role": "admin", "expires": "P1M"}, headers=owner_token
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "expires"


async def test_delete_revokes_a_token_and_the_token_then_gets_401(
    client: httpx.AsyncClient, team: People, mint: Mint, owner_token: dict[str, str]
) -> None:
    secret = await mint("olive@acme.test", role="admin", name="doomed")
    token_id = (await team.token_principal(secret)).id

    response = await client.delete(f"{ORG}/tokens/{token_id}", headers=owner_token)

    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert (await client.get(f"{ORG}/tokens", headers=bearer(secret))).status_code == 401


async def test_rotating_returns_a_new_secret_and_the_old_one_works_through_its_grace(
    client: httpx.AsyncClient, team: People, mint: Mint, owner_token: dict[str, str], as_person: AsPerson
) -> None:
    old = await mint("olive@acme.test", role="admin", name="ci")
    token_id = (await team.token_principal(old)).id
    await as_person("olive@acme.test")

    response = await client.post(f"{ORG}/tokens/{token_id}/rotate", json={"grace": "PT1H"}, headers=owner_token)

    assert response.status_code == 200, response.text
    rotated = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert rotated["token"]["previous_valid_until"] is not None
    assert (await team.token_principal(old)).id == token_id
    assert (await team.token_principal(rotated["secret"])).id == token_id


async def test_an_api_token_adds_existing_accounts_but_never_creates_one(
    client: httpx.AsyncClient, owner_token: dict[str, str], team: People
) -> None:
    # Tokens mint no credentials: a new account's password or invitation link would let a leaked token's
    # holder keep access after the token is revoked, as a token minted by a token would.
    async with team.platform.db.session() as s:  # an account with a password, not a member of acme
        s.add(User(email="zoe@globex.test", name="zoe", password_hash="argon2id-hash"))

    with_password = await client.post(
        f"{ORG}/members", json={"email": "nia@acme.test", "password": "a long enough password"}, headers=owner_token
    )
    with_link = await client.post(f"{ORG}/members", json={"email": "nia@acme.test"}, headers=owner_token)
    existing = await client.post(f"{ORG}/members", json={"email": "zoe@globex.test"}, headers=owner_token)

    for refused, credential in ((with_password, "a password"), (with_link, "an invitation link")):
        assert refused.status_code == 403, refused.text
        assert f"API tokens cannot give a person {credential}" in refused.json()["detail"]
        assert "testgate member invite" in refused.json()["detail"]
    async with team.platform.db.session() as s:
        assert await s.scalar(select(User.id).where(User.email == "nia@acme.test")) is None
    assert existing.status_code == 201, existing.text
    assert (existing.json()["existing_user"], existing.json()["invite_url"]) == (True, None)


async def test_members_are_listed_invited_changed_and_removed(
    client: httpx.AsyncClient, owner_token: dict[str, str], as_person: AsPerson
) -> None:
    await as_person("olive@acme.test")
    invited = await client.post(
        f"{ORG}/members", json={"email": "nia@acme.test", "environments": {"dev": "read"}}, headers=owner_token
    )
    assert invited.status_code == 201, invited.text
    user_id = invited.json()["member"]["user_id"]
    assert invited.headers["location"] == f"{ORG}/members/{user_id}"
    assert invited.headers["cache-control"] == "no-store"
    assert "/invite?token=" in invited.json()["invite_url"]

    patched = await client.patch(
        f"{ORG}/members/nia@acme.test", json={"role": "admin", "environments": {"dev": "none"}}, headers=owner_token
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["role"], patched.json()["grants"]) == ("admin", {})

    listed = await client.get(f"{ORG}/members", params={"role": "admin"}, headers=owner_token)
    assert [m["email"] for m in listed.json()["members"]] == ["nia@acme.test"]

    removed = await client.delete(f"{ORG}/members/{user_id}", headers=owner_token)
    assert removed.status_code == 200
    assert removed.json()["member"]["email"] == "nia@acme.test"
    assert (await client.delete(f"{ORG}/members/{user_id}", headers=owner_token)).status_code == 404


async def test_a_patch_without_role_or_environments_is_a_422(
    client: httpx.AsyncClient, owner_token: dict[str, str]
) -> None:
    response = await client.patch(f"{ORG}/members/mia@acme.test", json={}, headers=owner_token)

    assert response.status_code == 422


async def test_a_patch_granting_environments_to_an_admin_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, owner_token: dict[str, str]
) -> None:
    before = (await client.get(f"{ORG}/members", headers=owner_token)).json()
    body = {"role": "admin", "environments": {"dev": "read"}}
    response = await client.patch(f"{ORG}/members/mia@acme.test", json=body, headers=owner_token)

    assert response.status_code == 422
    assert "an admin holds every environment; grant environments (dev) with role member" in response.text
    assert (await client.get(f"{ORG}/members", headers=owner_token)).json() == before


async def test_an_admin_token_cannot_make_an_owner_and_the_last_owner_stays(
    client: httpx.AsyncClient, owner_token: dict[str, str]
) -> None:
    promote = await client.patch(f"{ORG}/members/mia@acme.test", json={"role": "owner"}, headers=owner_token)
    assert promote.status_code == 403

    demote = await client.delete(f"{ORG}/members/olive@acme.test", headers=owner_token)
    assert demote.status_code == 403


async def test_the_last_owner_cannot_be_demoted_over_rest(
    client: httpx.AsyncClient, owner_token: dict[str, str], as_person: AsPerson
) -> None:
    await as_person("olive@acme.test")

    response = await client.patch(f"{ORG}/members/olive@acme.test", json={"role": "admin"}, headers=owner_token)

    assert response.status_code == 409
    assert "last owner" in response.json()["detail"]


async def test_a_member_token_can_neither_list_nor_manage_members(
    client: httpx.AsyncClient, team: People, mint: Mint
) -> None:
    headers = bearer(await mint("olive@acme.test", environments={"dev": "admin"}))

    assert (await client.get(f"{ORG}/members", headers=headers)).status_code == 403
    assert (await client.post(f"{ORG}/members", json={"email": "x@acme.test"}, headers=headers)).status_code == 403


async def test_the_routes_need_a_bearer_token_and_hide_other_organizations(
    client: httpx.AsyncClient, owner_token: dict[str, str]
) -> None:
    assert (await client.get(f"{ORG}/tokens")).status_code == 401
    assert (await client.get("/api/v1/organizations/globex/members", headers=owner_token)).status_code == 404
