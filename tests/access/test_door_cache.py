"""The door's caches (verified tokens, environments by slug) never outlive a change to access.

Security claim: a revoked token, a lowered grant, a removed member or a deleted environment is refused
on the very next request — in this process, in another process on the same SQLite file, and on another
replica on PostgreSQL — although a verified token is otherwise reused without reading the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from tests.conftest import _drop_postgres_database, _postgres_database

from testgate.access import tokens
from testgate.access.principal import Permission, Principal, Role
from testgate.access.verifier import verify_bearer
from testgate.config import Settings
from testgate.errors import NotFound, Unauthenticated
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade
from testgate.store.tenancy import Environment, EnvironmentGrant, Membership, Organization, User
from testgate.store.tokens import ApiTokenRow


async def _member_token(platform: Platform, permission: Permission = Permission.READ) -> tuple[str, str]:
    """A member who holds ``permission`` in dev, and a member token of theirs: (secret, user id)."""
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        env = await tenancy.environment_by_slug(s, org, "dev")
        user = User(email=f"m{time.monotonic_ns()}@example.com", name="m", password_hash=None)
        s.add(user)
        await s.flush()
        s.add(Membership(organization_id=org.id, user_id=user.id, role=Role.MEMBER.value))
        s.add(EnvironmentGrant(environment_id=env.id, user_id=user.id, permission=permission.label))
        issued = await tokens.issue(
            s,
            organization_id=org.id,
            name="door",
            role=Role.MEMBER,
            grants={env.id: permission},
            created_by=user.id,
            expires_at=None,
        )
    return issued.secret, user.id


class CountingDatabase:
    """Counts the sessions opened through ``db`` (the store reads a verification costs)."""

    def __init__(self, platform: Platform) -> None:
        self.opened = 0
        original = platform.db.session

        def counting(*args: object, **kwargs: object) -> object:
            self.opened += 1
            return original(*args, **kwargs)  # type: ignore[arg-type]

        platform.db.session = counting  # type: ignore[method-assign]


async def test_a_verified_token_is_reused_without_reading_the_store(platform: Platform) -> None:
    secret, _ = await _member_token(platform)
    first = await verify_bearer(platform, secret, source="10.0.0.1")
    sessions = CountingDatabase(platform)
    again = [await verify_bearer(platform, secret, source="10.0.0.1") for _ in range(5)]
    assert sessions.opened == 0
    assert all(p == first for p in again)


async def test_revoking_a_token_refuses_it_on_the_next_request(platform: Platform) -> None:
    secret, _ = await _member_token(platform)
    await verify_bearer(platform, secret, source="10.0.0.1")
    async with platform.db.session() as s:
        row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
        assert row is not None
        tokens.revoke(row)
    with pytest.raises(Unauthenticated, match="revoked"):
        await verify_bearer(platform, secret, source="10.0.0.1")


async def test_a_lowered_grant_of_the_tokens_creator_applies_on_the_next_request(platform: Platform) -> None:
    secret, user_id = await _member_token(platform, Permission.WRITE)
    before = await verify_bearer(platform, secret, source=None)
    env_id = next(iter(before.grants))
    assert before.permission_in(env_id) == Permission.WRITE
    async with platform.db.session() as s:
        # A Core UPDATE (not a flushed object) is seen too.
        await s.execute(
            update(EnvironmentGrant).where(EnvironmentGrant.user_id == user_id).values(permission=Permission.READ.label)
        )
    after = await verify_bearer(platform, secret, source=None)
    assert after.permission_in(env_id) == Permission.READ


async def test_removing_the_member_refuses_their_token_on_the_next_request(platform: Platform) -> None:
    secret, user_id = await _member_token(platform)
    await verify_bearer(platform, secret, source=None)
    async with platform.db.session() as s:
        membership = await s.scalar(select(Membership).where(Membership.user_id == user_id))
        await s.delete(membership)
    with pytest.raises(Unauthenticated):
        await verify_bearer(platform, secret, source=None)


async def test_recording_a_tokens_last_use_does_not_end_the_cache(platform: Platform) -> None:
    """Bookkeeping columns decide nothing: writing them must not turn every request into a miss."""
    secret, _ = await _member_token(platform)
    version = platform.db.access.current()
    await verify_bearer(platform, secret, source="10.0.0.1")
    await verify_bearer(platform, secret, source="10.0.0.2")  # a new address: its use is written
    async with platform.db.session() as s:
        row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
        assert row is not None
        assert row.last_used_from == "10.0.0.2"
    assert platform.db.access.current() == version


async def test_a_tokens_expiry_ends_its_cache_entry(platform: Platform) -> None:
    secret, _ = await _member_token(platform)
    async with platform.db.session() as s:
        row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
        assert row is not None
        row.expires_at = utcnow() + timedelta(seconds=1)
    await verify_bearer(platform, secret, source=None)
    await asyncio.sleep(1.2)
    with pytest.raises(Unauthenticated, match="expired"):
        await verify_bearer(platform, secret, source=None)


async def test_a_renamed_environment_is_not_found_by_its_old_slug(platform: Platform) -> None:
    ids = await tenancy.environment_ids(platform.db, platform.scopes, "acme", "dev")
    assert await tenancy.environment_ids(platform.db, platform.scopes, "acme", "dev") == ids
    async with platform.db.session() as s:
        env = await s.get(Environment, ids[1])
        assert env is not None
        env.slug = "staging"
    with pytest.raises(NotFound):
        await tenancy.environment_ids(platform.db, platform.scopes, "acme", "dev")
    assert await tenancy.environment_ids(platform.db, platform.scopes, "acme", "staging") == ids


async def test_cache_off_verifies_every_request_against_the_store(settings: Settings, platform: Platform) -> None:
    off = Platform(settings=settings.model_copy(update={"access_cache_seconds": 0}), db=platform.db)
    secret, _ = await _member_token(off)
    await verify_bearer(off, secret, source=None)
    sessions = CountingDatabase(off)
    await verify_bearer(off, secret, source=None)
    assert sessions.opened == 1


@pytest.fixture
async def second_process_db(settings: Settings, platform: Platform) -> AsyncIterator[Database]:
    """Another ``Database`` on the same SQLite file: what a CLI command run beside the server has."""
    db = Database(create_engine(settings.effective_database_url))
    yield db
    await db.dispose()


async def test_a_revocation_by_another_process_on_the_sqlite_file_is_seen_at_once(
    platform: Platform, second_process_db: Database
) -> None:
    secret, _ = await _member_token(platform)
    await verify_bearer(platform, secret, source=None)
    async with second_process_db.session() as s:
        row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
        assert row is not None
        tokens.revoke(row)
    with pytest.raises(Unauthenticated, match="revoked"):
        await verify_bearer(platform, secret, source=None)


def test_the_marker_file_changes_identity_on_every_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new inode each time: two changes within one tick of a coarse file-system clock still differ."""
    from testgate.store import changes
    from testgate.store.changes import AccessVersion

    monkeypatch.setattr(changes, "RESTAT_NS", 0)  # every current() looks at the file
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    writer, reader = AccessVersion(url), AccessVersion(url)
    seen = reader.current()
    for _ in range(20):
        writer.moved()
        now = reader.current()
        assert now != seen
        seen = now


def test_another_processs_change_is_seen_within_a_millisecond(tmp_path: Path) -> None:
    """One look at the marker file serves the calls of the next millisecond, no longer."""
    from testgate.store.changes import RESTAT_NS, AccessVersion

    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    writer, reader = AccessVersion(url), AccessVersion(url)
    looked = time.monotonic_ns()
    before = reader.current()
    writer.moved()
    now = reader.current()
    if time.monotonic_ns() - looked < RESTAT_NS:
        assert now == before  # the reader looked at the file less than a millisecond ago
    time.sleep(RESTAT_NS / 1e9)
    assert reader.current() != before


@pytest.mark.postgres
async def test_a_revocation_on_another_replica_is_heard_through_postgresql(tmp_path: Path) -> None:
    url = await _postgres_database()
    replicas: list[Platform] = []
    try:
        settings = Settings(data_dir=tmp_path / "data", database_url=url)
        replicas.extend(Platform(settings=settings, db=Database(create_engine(url))) for _ in range(2))
        await upgrade(replicas[0].db.engine)
        async with replicas[0].db.session() as s:
            await tenancy.bootstrap(s, "acme", "dev")
        for replica in replicas:
            await replica.db.access.listen()
            assert replica.db.access.current() is not None, "the listener did not connect"
        a, b = replicas
        before = b.db.access.current()
        secret, _ = await _member_token(a)
        await _heard(b, before)  # the notification of that change reaches b (and moves its version) first
        await verify_bearer(b, secret, source=None)
        sessions = CountingDatabase(b)
        await verify_bearer(b, secret, source=None)
        assert sessions.opened == 0, "replica b did not reuse its verification"
        async with a.db.session() as s:
            row = await s.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == tokens.digest(secret)))
            assert row is not None
            tokens.revoke(row)
        refused: Unauthenticated | None = None
        deadline = time.monotonic() + 5
        while refused is None:
            try:
                await verify_bearer(b, secret, source=None)
            except Unauthenticated as exc:
                refused = exc
            assert time.monotonic() < deadline, "replica b kept accepting a revoked token"
            await asyncio.sleep(0.01)
        assert "revoked" in str(refused)
        # Listener down: the caches are off rather than stale.
        await b.db.access.close()
        assert b.db.access.current() is None
        org = await _org_id(a)
        b.principals.put(("k", None, None), Principal("api_token", "x", "x", org, Role.ADMIN), b.db.access.current())
        assert b.principals.get(("k", None, None)) is None
    finally:
        for replica in replicas:
            await replica.db.dispose()
        await _drop_postgres_database(url)


async def _heard(platform: Platform, before: int | None, limit: float = 5.0) -> None:
    """Wait (bounded) until ``platform``'s access version moves past ``before``."""
    deadline = time.monotonic() + limit
    while platform.db.access.current() == before:
        assert time.monotonic() < deadline, "the change was never heard"
        await asyncio.sleep(0.01)


async def _org_id(platform: Platform) -> str:
    async with platform.db.session() as s:
        org = await s.scalar(select(Organization).where(Organization.slug == "acme"))
        assert org is not None
        return org.id
