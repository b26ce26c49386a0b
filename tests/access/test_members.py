"""Members: invitations and initial passwords, roles, environment grants, removal, and the last owner."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from testgate.access import tokens, users
from testgate.access.principal import Permission, Role, local_owner
from testgate.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.tenancy import Membership, User

from .conftest import Mint, People

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def team(people: People) -> People:
    """olive (owner), ada (admin), mia (member: run in dev)."""
    await people.add("olive@acme.test", Role.OWNER)
    await people.add("ada@acme.test", Role.ADMIN)
    await people.add("mia@acme.test", Role.MEMBER, dev=Permission.RUN)
    return people


def _secret(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


async def test_an_invitation_adds_the_member_with_grants_and_a_one_time_link(platform: Platform, team: People) -> None:
    invited = await team.call(
        "ada@acme.test", "member.invite", {"email": "Nia@Acme.test", "environments": {"dev": "write"}}
    )

    assert (invited.member.email, invited.member.role, invited.member.grants) == (
        "nia@acme.test",
        "member",
        {"dev": "write"},
    )
    assert invited.member.invitation_pending
    assert not invited.existing_user
    assert invited.invite_url.startswith(platform.settings.base_url + "/invite?token=")
    assert invited.invite_expires_at is not None


async def test_the_invitation_is_stored_only_as_a_hash_and_sets_a_password_once(
    platform: Platform, team: People
) -> None:
    invited = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})
    secret = _secret(invited.invite_url)
    async with platform.db.session() as s:
        user = await s.scalar(select(User).where(User.email == "nia@acme.test"))
        assert user is not None
        assert user.invite_hash is not None
        assert secret not in user.invite_hash

    async with platform.db.session() as s:
        redeemed = await users.redeem_invite(s, secret, password=PASSWORD)
    assert redeemed.password_hash is not None
    assert users.verify_password(redeemed.password_hash, PASSWORD)
    async with platform.db.session() as s:
        with pytest.raises(NotFound):
            await users.redeem_invite(s, secret, password=PASSWORD)
    listed = {m.email: m for m in (await team.call("ada@acme.test", "member.list")).members}
    assert not listed["nia@acme.test"].invitation_pending


async def test_an_expired_invitation_is_refused(platform: Platform, team: People) -> None:
    invited = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})

    async with platform.db.session() as s:
        with pytest.raises(Conflict, match="expired"):
            await users.redeem_invite(
                s, _secret(invited.invite_url), password=PASSWORD, now=utcnow() + timedelta(days=8)
            )


async def test_a_member_given_an_initial_password_can_use_it_and_the_audit_masks_it(
    platform: Platform, team: People
) -> None:
    invited = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test", "password": PASSWORD})

    assert invited.invite_url is None
    assert not invited.member.invitation_pending
    async with platform.db.session() as s:
        user = await users.by_email(s, "nia@acme.test")
    assert user is not None
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert users.verify_password(user.password_hash, PASSWORD)
    event = await team.last_event("member.invite")
    assert event.arguments["password"] == "***"
    assert PASSWORD not in str(event.arguments)


async def test_a_short_initial_password_is_refused(team: People) -> None:
    with pytest.raises(InvalidInput, match="too short"):
        await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test", "password": "short"})


async def test_an_existing_account_joins_without_its_password_changing(platform: Platform, team: People) -> None:
    invited = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test", "password": PASSWORD})
    await team.call("olive@acme.test", "member.remove", {"user": "nia@acme.test"})

    with pytest.raises(Conflict, match="add them without a password"):
        await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test", "password": "another password!"})
    again = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})

    assert again.existing_user
    assert again.invite_url is None
    assert again.member.user_id == invited.member.user_id
    with pytest.raises(Conflict, match="already a member"):
        await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})


async def _invite_from_globex(platform: Platform, email: str) -> Any:
    """``member.invite`` by the owner of another organization, globex."""
    async with platform.db.session() as s:
        globex = (await tenancy.bootstrap(s, "globex", "dev", issue_setup_token=False)).organization
    call = Call(local_owner(globex.id), "globex", None)
    return await dispatch(platform, call, "member.invite", {"email": email})


async def test_another_organization_cannot_take_over_a_pending_invitation(platform: Platform, team: People) -> None:
    # A password-setting link is a credential for the whole account: globex re-inviting acme's pending
    # member got a fresh link, set the password and signed in to acme as them.
    invited = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})

    with pytest.raises(Conflict, match="not yet accepted an invitation from another organization"):
        await _invite_from_globex(platform, "nia@acme.test")

    async with platform.db.session() as s:  # acme's link still stands, and is still the only one
        user = await users.invited_user(s, _secret(invited.invite_url))
        globex = await tenancy.organization_by_slug(s, "globex")
        joined = await s.scalar(select(Membership.id).where(Membership.organization_id == globex.id))
    assert user.email == "nia@acme.test"
    assert joined is None


async def test_a_pending_invitation_of_another_organization_is_not_joined(platform: Platform, team: People) -> None:
    # The other way round: globex invites first and keeps the link; had acme added the account, globex's
    # link would set the password of an acme admin.
    await _invite_from_globex(platform, "victim@corp.test")

    with pytest.raises(Conflict, match="not yet accepted an invitation from another organization"):
        await team.call("olive@acme.test", "member.invite", {"email": "victim@corp.test", "role": "admin"})

    with pytest.raises(NotFound):
        await team.call("olive@acme.test", "member.set_role", {"user": "victim@corp.test", "role": "member"})


async def test_an_account_without_a_password_or_another_organization_gets_a_new_link(
    platform: Platform, team: People
) -> None:
    await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})
    await team.call("olive@acme.test", "member.remove", {"user": "nia@acme.test"})

    again = await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test"})

    assert again.existing_user
    assert again.invite_url is not None
    async with platform.db.session() as s:
        assert (await users.invited_user(s, _secret(again.invite_url))).email == "nia@acme.test"


async def test_a_single_sign_on_member_gets_no_password_link_from_another_organization(
    platform: Platform, team: People
) -> None:
    # mia signs in through the identity provider: her account has no password hash.
    elsewhere = await _invite_from_globex(platform, "mia@acme.test")

    assert elsewhere.invite_url is None
    async with platform.db.session() as s:
        mia = await s.scalar(select(User).where(User.email == "mia@acme.test"))
    assert mia is not None
    assert (mia.password_hash, mia.invite_hash) == (None, None)


async def test_only_an_owner_can_make_an_owner(team: People) -> None:
    with pytest.raises(PermissionDenied, match="only an owner"):
        await team.call("ada@acme.test", "member.invite", {"email": "nia@acme.test", "role": "owner"})
    with pytest.raises(PermissionDenied, match="only an owner"):
        await team.call("ada@acme.test", "member.set_role", {"user": "mia@acme.test", "role": "owner"})

    promoted = await team.call("olive@acme.test", "member.set_role", {"user": "ada@acme.test", "role": "owner"})
    assert promoted.role == "owner"


async def test_an_admin_can_neither_demote_nor_remove_an_owner(team: People) -> None:
    await team.call("olive@acme.test", "member.invite", {"email": "otto@acme.test", "role": "owner"})

    with pytest.raises(PermissionDenied):
        await team.call("ada@acme.test", "member.set_role", {"user": "otto@acme.test", "role": "member"})
    with pytest.raises(PermissionDenied):
        await team.call("ada@acme.test", "member.remove", {"user": "otto@acme.test"})


async def test_an_admin_token_of_an_owner_is_not_an_owner(team: People, mint: Mint) -> None:
    as_token = await team.token_principal(await mint("olive@acme.test", role="admin"))

    with pytest.raises(PermissionDenied, match="only an owner"):
        await team.call(as_token, "member.set_role", {"user": "ada@acme.test", "role": "owner"})


async def test_the_last_owner_can_be_neither_demoted_nor_removed(team: People) -> None:
    with pytest.raises(Conflict, match="last owner"):
        await team.call("olive@acme.test", "member.set_role", {"user": "olive@acme.test", "role": "admin"})
    with pytest.raises(Conflict, match="last owner"):
        await team.call("olive@acme.test", "member.remove", {"user": "olive@acme.test"})

    await team.call("olive@acme.test", "member.set_role", {"user": "ada@acme.test", "role": "owner"})
    demoted = await team.call("olive@acme.test", "member.set_role", {"user": "olive@acme.test", "role": "member"})
    assert demoted.role == "member"
    assert (await team.last_event("member.set_role")).outcome == "allowed"


async def test_a_grant_is_set_changed_and_removed(team: People) -> None:
    with pytest.raises(NotFound, match=r"environment\(s\) prod not found"):
        await team.call("ada@acme.test", "member.grant", {"user": "mia@acme.test", "environments": {"prod": "read"}})
    await team.add("sam@acme.test", staging=Permission.READ)

    both = {"dev": "write", "staging": "read"}
    changed = await team.call("ada@acme.test", "member.grant", {"user": "mia@acme.test", "environments": both})
    removed = await team.call(
        "ada@acme.test", "member.grant", {"user": "mia@acme.test", "environments": {"dev": "none"}}
    )

    assert changed.grants == both
    assert removed.grants == {"staging": "read"}


async def test_removing_a_member_revokes_their_tokens(team: People, mint: Mint) -> None:
    secret = await mint("olive@acme.test", role="admin")
    await team.call("olive@acme.test", "member.set_role", {"user": "ada@acme.test", "role": "owner"})

    removed = await team.call("ada@acme.test", "member.remove", {"user": "olive@acme.test"})

    assert removed.revoked_tokens == 1
    with pytest.raises(tokens.TokenRejected, match="revoked"):
        await team.token_principal(secret)
    with pytest.raises(NotFound):
        await team.call("ada@acme.test", "member.remove", {"user": "olive@acme.test"})


async def test_members_can_neither_see_nor_manage_members(team: People) -> None:
    for name, args in [
        ("member.list", {}),
        ("member.invite", {"email": "x@acme.test"}),
        ("member.set_role", {"user": "mia@acme.test", "role": "admin"}),
        ("member.grant", {"user": "mia@acme.test", "environments": {"dev": "admin"}}),
        ("member.remove", {"user": "ada@acme.test"}),
    ]:
        with pytest.raises(PermissionDenied):
            await team.call("mia@acme.test", name, args)
        assert (await team.last_event(name)).outcome == "denied"


async def test_the_member_list_shows_roles_and_grants_by_environment_slug(team: People) -> None:
    listed = await team.call("ada@acme.test", "member.list")
    owners = await team.call("ada@acme.test", "member.list", {"role": "owner"})

    assert [(m.email, m.role, m.grants) for m in listed.members] == [
        ("ada@acme.test", "admin", {}),
        ("mia@acme.test", "member", {"dev": "run"}),
        ("olive@acme.test", "owner", {}),
    ]
    assert [m.email for m in owners.members] == ["olive@acme.test"]


async def test_an_outdated_password_hash_is_upgraded_after_a_successful_check() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    user = User(email="x@acme.test", name="x", password_hash=weak)

    assert users.needs_rehash(weak)
    assert users.verify_password(weak, PASSWORD)
    assert await users.rehash_if_needed(user, PASSWORD)
    assert user.password_hash != weak
    assert not users.needs_rehash(user.password_hash or "")
    assert not await users.rehash_if_needed(user, PASSWORD)


async def test_no_mcp_client_is_handed_a_new_accounts_password_or_link(platform: Platform, team: People) -> None:
    # As with token secrets: a credential must not land in a model's context, not even the local owner's.
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
    stdio = Call(local_owner(org.id), "acme", None, transport="mcp-stdio")

    with pytest.raises(PermissionDenied, match="not handed to MCP clients"):
        await dispatch(platform, stdio, "member.invite", {"email": "nia@acme.test"})
    async with platform.db.session() as s:
        assert await s.scalar(select(User.id).where(User.email == "nia@acme.test")) is None
        s.add(User(email="zoe@globex.test", name="zoe", password_hash="argon2id-hash"))
    joined = await dispatch(platform, stdio, "member.invite", {"email": "zoe@globex.test"})
    assert (joined.existing_user, joined.invite_url) == (True, None)
