"""Who may create, see, revoke and rotate which tokens: never more than the creator holds, now or later."""

from __future__ import annotations

import pytest

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.errors import NotFound, PermissionDenied
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform

from .conftest import Mint, People


@pytest.fixture
async def team(people: People) -> People:
    """olive (owner), ada (admin), mia (member: write in dev, read in staging), sam (member: read in staging)."""
    await people.add("olive@acme.test", Role.OWNER)
    await people.add("ada@acme.test", Role.ADMIN)
    await people.add("mia@acme.test", Role.MEMBER, dev=Permission.WRITE, staging=Permission.READ)
    await people.add("sam@acme.test", Role.MEMBER, staging=Permission.READ)
    return people


async def test_a_member_creates_a_token_with_at_most_what_they_hold(team: People) -> None:
    created = await team.call("mia@acme.test", "token.create", {"name": "ci", "environments": {"dev": "run"}})

    assert created.token.grants == {"dev": "run"}
    principal = await team.token_principal(created.secret)
    assert principal.role == Role.MEMBER
    assert sorted(p.label for p in principal.grants.values()) == ["run"]


@pytest.mark.parametrize(
    "environments", [{"dev": "admin"}, {"staging": "run"}, {"dev": "run", "staging": "write"}], ids=str
)
async def test_a_member_cannot_mint_a_token_above_their_own_permission(
    team: People, environments: dict[str, str]
) -> None:
    with pytest.raises(PermissionDenied, match="a token cannot be given"):
        await team.call("mia@acme.test", "token.create", {"name": "x", "environments": environments})

    assert (await team.call("olive@acme.test", "token.list")).tokens == []


async def test_an_environment_the_member_cannot_see_answers_as_absent(team: People) -> None:
    with pytest.raises(NotFound, match=r"environment\(s\) dev not found"):
        await team.call("sam@acme.test", "token.create", {"name": "x", "environments": {"dev": "read"}})


async def test_only_owners_and_admins_create_admin_tokens(team: People) -> None:
    for who in ("olive@acme.test", "ada@acme.test"):
        created = await team.call(who, "token.create", {"name": "all", "role": "admin"})
        assert (await team.token_principal(created.secret)).is_org_admin

    with pytest.raises(PermissionDenied, match="only owners and admins can create admin tokens"):
        await team.call("mia@acme.test", "token.create", {"name": "all", "role": "admin"})


async def test_a_session_capped_below_write_lists_tokens_but_cannot_change_them(team: People, mint: Mint) -> None:
    token_id = (await team.token_principal(await mint("olive@acme.test", role="admin", name="ci"))).id
    capped = await team.principal("olive@acme.test", cap=Permission.RUN)

    assert [t.name for t in (await team.call(capped, "token.list")).tokens] == ["ci"]
    for name, args in [
        ("token.create", {"name": "x", "environments": {"dev": "read"}}),
        ("token.rotate", {"id": token_id}),
        ("token.revoke", {"id": token_id}),
    ]:
        with pytest.raises(PermissionDenied, match="limited to run"):
            await team.call(capped, name, args)


async def test_a_write_capped_session_mints_at_most_write(team: People) -> None:
    capped = await team.principal("olive@acme.test", cap=Permission.WRITE)

    with pytest.raises(PermissionDenied, match="only owners and admins can create admin tokens"):
        await team.call(capped, "token.create", {"name": "x", "role": "admin"})
    with pytest.raises(PermissionDenied, match="a token cannot be given admin"):
        await team.call(capped, "token.create", {"name": "x", "environments": {"dev": "admin"}})
    created = await team.call(capped, "token.create", {"name": "x", "environments": {"dev": "write"}})
    assert created.token.grants == {"dev": "write"}


async def test_an_api_token_cannot_create_or_rotate_tokens(team: People, mint: Mint) -> None:
    secret = await mint("olive@acme.test", role="admin")
    as_token = await team.token_principal(secret)

    with pytest.raises(PermissionDenied, match="API tokens cannot create or rotate tokens"):
        await team.call(as_token, "token.create", {"name": "child", "environments": {"dev": "read"}})
    with pytest.raises(PermissionDenied, match="API tokens cannot create or rotate tokens"):
        await team.call(as_token, "token.rotate", {"id": as_token.id})


async def test_members_list_their_own_tokens_and_owners_and_admins_list_all(team: People, mint: Mint) -> None:
    await mint("mia@acme.test", name="mia-ci", environments={"dev": "read"})
    await mint("sam@acme.test", name="sam-ci", environments={"staging": "read"})
    await mint("ada@acme.test", name="ada-all", role="admin")

    def names(listed: object) -> list[str]:
        return sorted(t.name for t in listed.tokens)  # type: ignore[attr-defined]

    assert names(await team.call("mia@acme.test", "token.list")) == ["mia-ci"]
    assert names(await team.call("sam@acme.test", "token.list")) == ["sam-ci"]
    assert names(await team.call("ada@acme.test", "token.list")) == ["ada-all", "mia-ci", "sam-ci"]


async def test_a_member_token_lists_its_creators_tokens(team: People, mint: Mint) -> None:
    secret = await mint("mia@acme.test", name="mia-ci", environments={"dev": "read"})
    await mint("sam@acme.test", name="sam-ci", environments={"staging": "read"})

    listed = await team.call(await team.token_principal(secret), "token.list")

    assert [t.name for t in listed.tokens] == ["mia-ci"]


async def test_a_member_revokes_their_own_token_but_not_someone_elses(team: People, mint: Mint) -> None:
    mine = (await team.token_principal(await mint("mia@acme.test", environments={"dev": "read"}))).id
    theirs = (await team.token_principal(await mint("sam@acme.test", environments={"staging": "read"}))).id

    with pytest.raises(PermissionDenied):
        await team.call("mia@acme.test", "token.revoke", {"id": theirs})
    assert (await team.call("mia@acme.test", "token.revoke", {"id": mine})).status == "revoked"
    assert (await team.last_event("token.revoke")).outcome == "allowed"


async def test_a_read_only_token_revokes_itself_but_not_its_creators_stronger_tokens(team: People, mint: Mint) -> None:
    reader = await team.token_principal(await mint("mia@acme.test", environments={"dev": "read"}))
    writer = await team.token_principal(await mint("mia@acme.test", environments={"dev": "write"}))
    ci = (await team.token_principal(await mint("mia@acme.test", environments={"dev": "run"}))).id

    with pytest.raises(PermissionDenied, match="this API token holds read at most") as refused:
        await team.call(reader, "token.revoke", {"id": ci})
    assert refused.value.details == {"required": "write", "held": "read"}
    assert (await team.last_event("token.revoke")).outcome == "denied"
    assert [t.id for t in (await team.call(reader, "token.list")).tokens] == [reader.id]  # nor sees them
    assert len((await team.call(writer, "token.list")).tokens) == 3
    assert (await team.call(writer, "token.revoke", {"id": ci})).status == "revoked"
    assert (await team.call(reader, "token.revoke", {"id": reader.id})).status == "revoked"


@pytest.mark.parametrize("permission", [Permission.READ, Permission.WRITE])
async def test_a_token_the_local_owner_made_sees_and_revokes_itself(
    platform: Platform, team: People, permission: Permission
) -> None:
    """``testgate token create`` without a login acts as the local owner, so its tokens have no creator:
    such a token listed no token at all, itself included, and could not revoke itself."""
    async with platform.db.session() as s:
        acme = await tenancy.organization_by_slug(s, "acme")
        dev = await tenancy.environment_by_slug(s, acme, "dev")
        issued = [
            await tokens.issue(
                s, organization_id=acme.id, name=name, role=Role.MEMBER, grants=grants, created_by=None, expires_at=None
            )
            for name, grants in (("ci", {dev.id: permission}), ("other", {dev.id: Permission.READ}))
        ]
    principal = await team.token_principal(issued[0].secret)

    assert [t.name for t in (await team.call(principal, "token.list")).tokens] == ["ci"]
    with pytest.raises(PermissionDenied, match="only owners, admins and the token's creator"):
        await team.call(principal, "token.revoke", {"id": issued[1].row.id})
    assert (await team.call(principal, "token.revoke", {"id": issued[0].row.id})).status == "revoked"


async def test_an_admin_revokes_any_token_but_only_the_creator_rotates_it(team: People, mint: Mint) -> None:
    token_id = (await team.token_principal(await mint("mia@acme.test", environments={"dev": "read"}))).id

    with pytest.raises(PermissionDenied, match="only the token's creator can rotate it"):
        await team.call("ada@acme.test", "token.rotate", {"id": token_id})
    rotated = await team.call("mia@acme.test", "token.rotate", {"id": token_id})
    assert rotated.token.id == token_id
    assert (await team.call("ada@acme.test", "token.revoke", {"id": token_id})).status == "revoked"


async def test_a_token_of_another_organization_answers_as_absent(platform: Platform, team: People) -> None:
    async with platform.db.session() as s:
        globex = (await tenancy.bootstrap(s, "globex", "dev", issue_setup_token=False)).organization
        issued = await tokens.issue(
            s, organization_id=globex.id, name="g", role=Role.ADMIN, grants={}, created_by=None, expires_at=None
        )

    for op in ("token.revoke", "token.rotate"):
        with pytest.raises(NotFound, match=f"no token '{issued.row.id}' in organization 'acme'"):
            await team.call("olive@acme.test", op, {"id": issued.row.id})


@pytest.mark.parametrize("transport", ["mcp-http", "mcp-sse", "mcp-stdio"])
async def test_no_token_secret_is_handed_to_an_mcp_client(platform: Platform, team: People, transport: str) -> None:
    owner = await team.principal("olive@acme.test")
    call = Call(owner, "acme", "dev", transport=transport)

    with pytest.raises(PermissionDenied, match="not handed to MCP clients"):
        await dispatch(platform, call, "token.create", {"name": "agent", "environments": {"dev": "read"}})
    assert (await team.last_event("token.create")).outcome == "denied"
