"""API tokens: format and checksum, hash-only storage, expiry, rotation with and without grace, revocation."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.errors import Conflict, InvalidInput, Unauthenticated
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.tokens import ApiTokenRow

from .conftest import Mint, People

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_a_token_is_the_prefix_256_random_bits_in_base62_and_a_crc32_checksum() -> None:
    secret = tokens.generate()

    assert secret.startswith("tgp_")
    assert len(secret) == 4 + 43 + 6
    assert tokens.well_formed(secret)
    assert tokens.generate() != secret


def test_changing_any_one_character_of_a_token_breaks_its_checksum() -> None:
    secret = tokens.generate()
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

    for i in range(4, len(secret)):
        other = alphabet[(alphabet.index(secret[i]) + 1) % 62]
        assert not tokens.well_formed(secret[:i] + other + secret[i + 1 :]), f"position {i}"


@pytest.mark.parametrize("text", ["", "tgp_", "ghp_" + "A" * 49, "tgp_" + "!" * 49, "tgp_" + "A" * 48])
def test_a_malformed_token_is_refused_before_any_lookup(text: str) -> None:
    assert not tokens.well_formed(text)


async def test_the_secret_is_stored_only_as_a_hash_and_appears_nowhere_in_the_database_file(
    platform: Platform, people: People, owner_email: str
) -> None:
    created = await people.call(owner_email, "token.create", {"name": "ci", "role": "admin", "expires": "P1D"})
    rotated = await people.call(owner_email, "token.rotate", {"id": created.token.id, "grace": "PT1H"})
    await platform.db.dispose()

    stored = b"".join(p.read_bytes() for p in platform.settings.data_dir.glob("testgate.db*"))

    for secret in (created.secret, rotated.secret):
        assert secret.encode() not in stored
        assert secret[4:].encode() not in stored
        assert tokens.digest(secret).encode() in stored


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", NOW + timedelta(days=30)),
        ("PT12H", NOW + timedelta(hours=12)),
        ("P1W", NOW + timedelta(weeks=1)),
        ("P1DT2H", NOW + timedelta(days=1, hours=2)),
        ("2027-01-01", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T08:00:00", datetime(2027, 1, 1, 8, tzinfo=UTC)),
        ("2027-01-01T08:00:00+02:00", datetime(2027, 1, 1, 6, tzinfo=UTC)),
    ],
)
def test_an_expiry_is_an_iso_8601_duration_from_now_or_a_date_or_a_datetime(text: str, expected: datetime) -> None:
    assert tokens.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P", "PT", "P0D", "2020-01-01", "next week"])
def test_an_expiry_in_months_years_the_past_or_prose_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        tokens.parse_expiry(text, NOW)


async def test_an_expiry_given_to_the_operation_is_validated_with_the_field_named(
    people: People, owner_email: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await people.call(owner_email, "token.create", {"name": "x", "role": "admin", "expires": "P1M"})

    assert [e.path for e in caught.value.errors] == ["expires"]


async def test_a_token_without_expiry_is_created_with_a_warning_in_the_output(people: People, owner_email: str) -> None:
    created = await people.call(owner_email, "token.create", {"name": "forever", "role": "admin"})

    assert created.token.expires_at is None
    assert any("never expires" in w for w in created.warnings)


async def test_an_expired_token_is_refused(people: People, owner_email: str, mint: Mint) -> None:
    secret = await mint(owner_email, role="admin", expires="PT1H")

    await people.token_principal(secret, now=utcnow() + timedelta(minutes=59))
    with pytest.raises(Unauthenticated, match="the token expired"):
        await people.token_principal(secret, now=utcnow() + timedelta(minutes=61))


async def test_rotation_without_grace_voids_the_old_secret_at_once(
    people: People, owner_email: str, mint: Mint
) -> None:
    old = await mint(owner_email, role="admin")
    token_id = (await people.token_principal(old)).id

    rotated = await people.call(owner_email, "token.rotate", {"id": token_id})

    assert (await people.token_principal(rotated.secret)).id == token_id
    with pytest.raises(tokens.TokenRejected, match="rotated"):
        await people.token_principal(old)
    assert rotated.token.prefix == rotated.secret[:8]
    assert rotated.token.previous_valid_until is None


async def test_rotation_with_grace_keeps_the_old_secret_working_until_the_grace_ends(
    people: People, owner_email: str, mint: Mint
) -> None:
    old = await mint(owner_email, role="admin")
    token_id = (await people.token_principal(old)).id

    rotated = await people.call(owner_email, "token.rotate", {"id": token_id, "grace": "PT1H"})
    until = rotated.token.previous_valid_until

    assert until is not None
    assert (await people.token_principal(old, now=until - timedelta(seconds=1))).id == token_id
    assert (await people.token_principal(rotated.secret, now=until + timedelta(seconds=1))).id == token_id
    with pytest.raises(tokens.TokenRejected, match="rotated"):
        await people.token_principal(old, now=until)


async def test_a_second_rotation_ends_the_first_ones_grace(people: People, owner_email: str, mint: Mint) -> None:
    first = await mint(owner_email, role="admin")
    token_id = (await people.token_principal(first)).id
    second = await people.call(owner_email, "token.rotate", {"id": token_id, "grace": "P1D"})

    await people.call(owner_email, "token.rotate", {"id": token_id, "grace": "P1D"})

    with pytest.raises(Unauthenticated):
        await people.token_principal(first)
    assert (await people.token_principal(second.secret)).id == token_id


@pytest.mark.parametrize("grace", ["P8D", "PT169H", "P1M", "soon"])
async def test_a_grace_period_longer_than_seven_days_or_unreadable_is_refused(
    people: People, owner_email: str, mint: Mint, grace: str
) -> None:
    token_id = (await people.token_principal(await mint(owner_email, role="admin"))).id

    with pytest.raises(InvalidInput):
        await people.call(owner_email, "token.rotate", {"id": token_id, "grace": grace})


def test_rotating_directly_with_a_grace_over_seven_days_is_refused() -> None:
    row = ApiTokenRow(secret_hash="a" * 64, prefix="tgp_aaaa", name="t")

    with pytest.raises(InvalidInput):
        tokens.rotate(row, tokens.MAX_GRACE + timedelta(seconds=1), NOW)


async def test_a_revoked_token_is_refused_with_both_its_secrets(people: People, owner_email: str, mint: Mint) -> None:
    old = await mint(owner_email, role="admin")
    token_id = (await people.token_principal(old)).id
    rotated = await people.call(owner_email, "token.rotate", {"id": token_id, "grace": "P1D"})

    revoked = await people.call(owner_email, "token.revoke", {"id": token_id})

    assert revoked.status == "revoked"
    for secret in (old, rotated.secret):
        with pytest.raises(tokens.TokenRejected, match="revoked"):
            await people.token_principal(secret)


async def test_revoking_twice_keeps_the_first_revocation_time(people: People, owner_email: str, mint: Mint) -> None:
    token_id = (await people.token_principal(await mint(owner_email, role="admin"))).id
    first = await people.call(owner_email, "token.revoke", {"id": token_id})

    second = await people.call(owner_email, "token.revoke", {"id": token_id})

    assert second.revoked_at == first.revoked_at


async def test_rotating_a_revoked_or_expired_token_is_a_conflict(
    platform: Platform, people: People, owner_email: str, mint: Mint
) -> None:
    revoked = (await people.token_principal(await mint(owner_email, role="admin"))).id
    expired = (await people.token_principal(await mint(owner_email, role="admin"))).id
    await people.call(owner_email, "token.revoke", {"id": revoked})
    async with platform.db.session() as s:
        await s.execute(update(ApiTokenRow).where(ApiTokenRow.id == expired).values(expires_at=utcnow()))

    for token_id in (revoked, expired):
        with pytest.raises(Conflict):
            await people.call(owner_email, "token.rotate", {"id": token_id})


async def test_a_token_records_its_last_use_and_the_listing_shows_it_without_the_secret(
    people: People, owner_email: str, mint: Mint
) -> None:
    secret = await mint(owner_email, role="member", environments={"dev": "run"}, labels={"team": "qa"})
    await people.token_principal(secret, source="10.0.0.7")

    (token,) = (await people.call(owner_email, "token.list")).tokens

    assert (token.name, token.role, token.grants, token.labels) == ("t", "member", {"dev": "run"}, {"team": "qa"})
    assert (token.last_used_from, token.creator, token.status) == ("10.0.0.7", owner_email, "active")
    assert token.last_used_at is not None
    assert secret not in token.model_dump_json()


async def test_a_token_created_through_dispatch_is_audited_without_its_secret(
    people: People, owner_email: str, mint: Mint
) -> None:
    secret = await mint(owner_email, role="admin")

    event = await people.last_event("token.create")

    owner = await people.principal(owner_email)
    assert (event.outcome, event.actor_type, event.actor_id, event.actor_name) == (
        "allowed",
        "user",
        owner.id,
        owner_email,
    )
    assert event.resources[0]["type"] == "api_token"
    assert secret not in str(event.arguments) + event.reason


async def test_an_admin_token_whose_creator_is_demoted_holds_only_the_creators_grants(
    platform: Platform, people: People
) -> None:
    await people.add("olive@acme.test", Role.OWNER)
    await people.add("ada@acme.test", Role.ADMIN, dev=Permission.RUN)
    secret = (await people.call("ada@acme.test", "token.create", {"name": "a", "role": "admin"})).secret
    assert (await people.token_principal(secret)).is_org_admin

    await people.call("olive@acme.test", "member.set_role", {"user": "ada@acme.test", "role": "member"})

    demoted = await people.token_principal(secret)
    assert (demoted.role, demoted.is_org_admin) == (Role.MEMBER, False)
    assert demoted.permission_in(await _dev_id(platform)) == Permission.RUN


async def test_a_member_token_follows_its_creators_lowered_grant_at_its_next_use(
    platform: Platform, people: People
) -> None:
    await people.add("olive@acme.test", Role.OWNER)
    mia = await people.add("mia@acme.test", Role.MEMBER, dev=Permission.WRITE)
    dev = await _dev_id(platform)
    secret = await _issue(platform, mia, {dev: Permission.WRITE})
    assert (await people.token_principal(secret)).permission_in(dev) == Permission.WRITE

    await people.call("olive@acme.test", "member.grant", {"user": "mia@acme.test", "environments": {"dev": "read"}})

    assert (await people.token_principal(secret)).permission_in(dev) == Permission.READ


async def test_a_token_issued_directly_keeps_the_issue_api(platform: Platform) -> None:
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        issued = await tokens.issue(
            s, organization_id=org.id, name="raw", role=Role.ADMIN, grants={}, created_by=None, expires_at=None
        )
    async with platform.db.session() as s:
        principal = await tokens.authenticate(s, issued.secret)

    assert (principal.kind, principal.id, principal.is_org_admin) == ("api_token", issued.row.id, True)


async def _dev_id(platform: Platform) -> str:
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        return (await tenancy.environment_by_slug(s, org, "dev")).id


async def _issue(platform: Platform, creator: str, grants: dict[str, Permission]) -> str:
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        issued = await tokens.issue(
            s, organization_id=org.id, name="m", role=Role.MEMBER, grants=grants, created_by=creator, expires_at=None
        )
    return issued.secret


async def test_last_use_is_written_at_most_once_a_minute_per_address(
    people: People, owner_email: str, mint: Mint, platform: Platform
) -> None:
    # A write per request would serialize every authenticated call on one row (and SQLite's lock).
    secret = await mint(owner_email, role="member", environments={"dev": "run"})
    start = utcnow()

    async def use(at: datetime, source: str) -> tuple[datetime | None, str | None]:
        async with platform.db.session() as s:
            await tokens.authenticate(s, secret, source=source, now=at)
        async with platform.db.session() as s:
            row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
            assert row is not None
            return row.last_used_at, row.last_used_from

    assert await use(start, "10.0.0.7") == (start, "10.0.0.7")
    assert await use(start + timedelta(seconds=30), "10.0.0.7") == (start, "10.0.0.7")
    assert await use(start + timedelta(seconds=31), "10.0.0.8") == (start + timedelta(seconds=31), "10.0.0.8")
    later = start + timedelta(seconds=95)
    assert await use(later, "10.0.0.8") == (later, "10.0.0.8")
