"""Environments: owners and admins create and rename them; everyone lists the ones they can reach.

DESIGN, Access model: organization -> environments; members hold a permission per environment, owners and
admins hold every environment. A new environment is usable at once by every entry point.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from testgate.access.principal import Permission, Role
from testgate.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.operations.environments import EnvironmentInfo, EnvironmentList
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.tenancy import Environment

from .conftest import ORG, Mint, People, accept, bearer

FLOW = "kind: TestWorkflow\nmetadata: {name: smoke}\nspec:\n  steps: [{name: one, shell: echo one}]\n"


@pytest.fixture
async def team(people: People) -> People:
    await people.add("olive@acme.test", Role.OWNER)
    await people.add("adam@acme.test", Role.ADMIN)
    await people.add("mia@acme.test", Role.MEMBER, dev=Permission.RUN)
    return people


async def _in(people: People, who: str, env: str, name: str, args: dict[str, Any]) -> Any:
    """Dispatch an environment-scoped operation in ``env`` as the person ``who``."""
    principal = await people.principal(who)
    return await dispatch(people.platform, Call(principal, "acme", env, confirm=accept), name, args)


async def _slugs(platform: Platform) -> dict[str, str]:
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        return {e.slug: e.name for e in await tenancy.list_environments(s, org)}


async def test_an_owner_creates_an_environment_that_is_listed_with_its_urls_and_audited(team: People) -> None:
    created = await team.call("olive@acme.test", "environment.create", {"slug": "staging", "name": " Staging "})

    assert isinstance(created, EnvironmentInfo)
    assert (created.slug, created.name, created.permission) == ("staging", "Staging", "admin")
    assert created.mcp_url.endswith("/organizations/acme/environments/staging/mcp")
    assert created.api_url.endswith("/api/v1/organizations/acme/environments/staging")
    assert created.console_url.endswith("/ui/acme/staging/executions")
    listed = await team.call("olive@acme.test", "environment.list")
    assert isinstance(listed, EnvironmentList)
    assert [e.slug for e in listed.environments] == ["dev", "staging"]
    event = await team.last_event("environment.create")
    assert event.outcome == "allowed"
    async with team.platform.db.session() as s:
        env_id = await s.scalar(select(Environment.id).where(Environment.slug == "staging"))
    assert event.resources == [{"type": "environment", "id": env_id, "name": "staging"}]
    assert event.arguments == {"slug": "staging", "name": "Staging"}


async def test_a_member_lists_only_what_they_hold_and_cannot_create_or_rename(team: People) -> None:
    await team.call("olive@acme.test", "environment.create", {"slug": "staging"})

    listed = await team.call("mia@acme.test", "environment.list")

    assert [(e.slug, e.permission) for e in listed.environments] == [("dev", "run")]
    with pytest.raises(NotFound, match="environment 'staging' not found"):
        await team.call("mia@acme.test", "environment.get", {"slug": "staging"})
    with pytest.raises(PermissionDenied, match="needs an organization owner or admin"):
        await team.call("mia@acme.test", "environment.create", {"slug": "prod"})
    with pytest.raises(PermissionDenied):
        await team.call("mia@acme.test", "environment.rename", {"slug": "dev", "name": "Mine"})
    assert await _slugs(team.platform) == {"dev": "dev", "staging": "staging"}
    assert (await team.last_event("environment.create")).outcome == "denied"


async def test_a_credential_capped_below_admin_cannot_create_even_for_an_owner(team: People) -> None:
    # DESIGN, Access model: an OAuth scope caps the token; testgate:write is below admin.
    capped = await team.principal("olive@acme.test", cap=Permission.WRITE)

    with pytest.raises(PermissionDenied, match="limited to write"):
        await team.call(capped, "environment.create", {"slug": "prod"})
    assert "prod" not in await _slugs(team.platform)


async def test_a_new_environment_is_reached_by_admins_at_once_and_by_members_once_granted(team: People) -> None:
    await team.call("adam@acme.test", "environment.create", {"slug": "staging"})
    created = await _in(team, "adam@acme.test", "staging", "workflow.create", {"definition": FLOW})
    assert created.name == "smoke"

    with pytest.raises(NotFound):
        await _in(team, "mia@acme.test", "staging", "workflow.list", {})
    await team.call("olive@acme.test", "member.grant", {"user": "mia@acme.test", "environments": {"staging": "read"}})

    listed = await _in(team, "mia@acme.test", "staging", "workflow.list", {})
    assert [w.name for w in listed.workflows] == ["smoke"]
    with pytest.raises(PermissionDenied):
        await _in(team, "mia@acme.test", "staging", "workflow.run", {"name": "smoke"})


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"slug": "Staging"}, "slug"),
        ({"slug": "under_score"}, "slug"),
        ({"slug": "-dash"}, "slug"),
        ({"slug": "a" * 64}, "slug"),
        ({"slug": ""}, "slug"),
        ({"slug": "ok\x00"}, "slug"),
        ({"slug": "ok", "name": "   "}, "name"),
        ({"slug": "ok", "name": "x" * 201}, "name"),
        ({"slug": "ok", "region": "eu"}, "region"),
    ],
)
async def test_a_bad_slug_or_name_is_refused_naming_the_field(team: People, args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await team.call("olive@acme.test", "environment.create", args)

    assert [e.path for e in refused.value.errors] == [field]
    assert await _slugs(team.platform) == {"dev": "dev"}


async def test_creating_an_existing_environment_is_a_conflict_that_changes_nothing(team: People) -> None:
    await team.call("olive@acme.test", "environment.create", {"slug": "staging", "name": "Staging"})

    with pytest.raises(Conflict, match="environment 'staging' already exists"):
        await team.call("olive@acme.test", "environment.create", {"slug": "staging", "name": "Other"})
    assert await _slugs(team.platform) == {"dev": "dev", "staging": "Staging"}


async def test_renaming_changes_the_name_and_never_the_slug(team: People) -> None:
    renamed = await team.call("adam@acme.test", "environment.rename", {"slug": "dev", "name": "Development"})

    assert (renamed.slug, renamed.name) == ("dev", "Development")
    assert await _slugs(team.platform) == {"dev": "Development"}
    with pytest.raises(InvalidInput):
        await team.call("adam@acme.test", "environment.rename", {"slug": "dev", "name": " "})
    with pytest.raises(NotFound, match="environment 'nowhere' not found"):
        await team.call("adam@acme.test", "environment.rename", {"slug": "nowhere", "name": "X"})
    assert await _slugs(team.platform) == {"dev": "Development"}


async def test_rest_creates_gets_renames_and_lists_environments(
    client: httpx.AsyncClient, team: People, mint: Mint
) -> None:
    admin = bearer(await mint("olive@acme.test", role="admin", name="owner-admin"))

    created = await client.post(f"{ORG}/environments", json={"slug": "staging", "name": "Staging"}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{ORG}/environments/staging"
    fetched = await client.get(created.headers["location"], headers=admin)
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "Staging"
    renamed = await client.patch(f"{ORG}/environments/staging", json={"name": "Pre-production"}, headers=admin)
    assert renamed.status_code == 200, renamed.text
    listed = await client.get(f"{ORG}/environments", headers=admin)
    assert [(e["slug"], e["name"]) for e in listed.json()["environments"]] == [
        ("dev", "dev"),
        ("staging", "Pre-production"),
    ]
    # The new environment's own routes answer at once.
    workflows = await client.get(f"{ORG}/environments/staging/workflows", headers=admin)
    assert workflows.status_code == 200, workflows.text


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("post", "/environments", {"slug": "dev"}, 409, "environment 'dev' already exists"),
        ("post", "/environments", {"slug": "Bad Slug"}, 422, "must be a slug"),
        ("post", "/environments", {"slug": "ok", "colour": "red"}, 422, "colour"),
        ("patch", "/environments/dev", {"name": ""}, 422, "name"),
        ("patch", "/environments/nowhere", {"name": "X"}, 404, "environment 'nowhere' not found"),
        ("get", "/environments/nowhere", None, 404, "environment 'nowhere' not found"),
    ],
)
async def test_rest_refusals_are_problems_and_change_nothing(
    client: httpx.AsyncClient,
    team: People,
    mint: Mint,
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
    detail: str,
) -> None:
    admin = bearer(await mint("olive@acme.test", role="admin", name="owner-admin"))

    response = await client.request(method, f"{ORG}{path}", json=body, headers=admin)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.text
    assert await _slugs(team.platform) == {"dev": "dev"}


async def test_rest_a_member_token_cannot_create_and_does_not_see_other_environments(
    client: httpx.AsyncClient, team: People, mint: Mint
) -> None:
    await team.call("olive@acme.test", "environment.create", {"slug": "staging"})
    member = bearer(await mint("mia@acme.test", environments={"dev": "run"}))

    refused = await client.post(f"{ORG}/environments", json={"slug": "prod"}, headers=member)
    listed = await client.get(f"{ORG}/environments", headers=member)
    hidden = await client.get(f"{ORG}/environments/staging", headers=member)

    assert refused.status_code == 403
    assert [e["slug"] for e in listed.json()["environments"]] == ["dev"]
    assert hidden.status_code == 404
    async with team.platform.db.session() as s:
        assert await s.scalar(select(Environment.id).where(Environment.slug == "prod")) is None
