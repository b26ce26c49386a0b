"""Organizations and environments: lookup by slug, and the default ones created on first start."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.instrumentation import manager_of_class

from testgate.errors import InvalidInput, NotFound
from testgate.ids import is_slug
from testgate.store.base import Base
from testgate.store.changes import AccessCache
from testgate.store.db import Database
from testgate.store.tenancy import Environment, Membership, Organization, SetupToken

R = TypeVar("R", bound=Base)
# An organization and one of its environments (or none) as column values, keyed by their slugs.
Scope = tuple[dict[str, Any], dict[str, Any] | None]
ScopeCache = AccessCache[tuple[str, str], Scope]


async def organization_by_slug(session: AsyncSession, slug: str) -> Organization:
    # No slug holds U+0000, and PostgreSQL cannot compare text holding it (it would be an internal error).
    org = None if "\x00" in slug else await session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        raise NotFound(f"organization {slug!r} not found")
    return org


async def environment_by_slug(session: AsyncSession, org: Organization, slug: str) -> Environment:
    env = (
        None
        if "\x00" in slug
        else await session.scalar(
            select(Environment).where(Environment.organization_id == org.id, Environment.slug == slug)
        )
    )
    if env is None:
        raise NotFound(f"environment {slug!r} not found in organization {org.slug!r}")
    return env


async def resolve(
    session: AsyncSession, cache: ScopeCache, org_slug: str, env_slug: str | None
) -> tuple[Organization, Environment | None]:
    """The organization and environment named by slugs.

    ``NotFound`` if the organization is absent; the environment is None when ``env_slug`` is None or
    names no environment of it. Served from ``cache`` while access is unchanged (a rename or deletion
    ends the entry at once) as fresh detached copies, with no query; otherwise loaded in ``session``.
    Callers read their columns: the store maps no relationships, so a detached copy has nothing to
    load, and no operation changes these rows through them.
    """
    key = (org_slug, env_slug or "")
    cached = cache.get(key)
    if cached is not None:
        org_values, env_values = cached
        org = _detached(Organization, org_values)
        return org, _detached(Environment, env_values) if env_values is not None else None
    version = cache.version.current()
    org = await organization_by_slug(session, org_slug)
    if env_slug is None:
        cache.put(key, (_columns(org), None), version)
        return org, None
    try:
        env = await environment_by_slug(session, org, env_slug)
    except NotFound:
        return org, None
    cache.put(key, (_columns(org), _columns(env)), version)
    return org, env


async def environment_ids(db: Database, cache: ScopeCache, org_slug: str, env_slug: str) -> tuple[str, str]:
    """The ids of the organization and environment named by slugs (``NotFound`` if absent), cached."""
    cached = cache.get((org_slug, env_slug))
    if cached is not None and cached[1] is not None:
        return str(cached[0]["id"]), str(cached[1]["id"])
    async with db.session(write=False) as session:
        org, env = await resolve(session, cache, org_slug, env_slug)
    if env is None:
        raise NotFound(f"environment {env_slug!r} not found in organization {org_slug!r}")
    return org.id, env.id


def _columns(row: Base) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(type(row)).column_attrs}


def _detached(model: type[R], values: dict[str, Any]) -> R:
    """A detached row of ``model`` holding ``values`` (every column), as ``make_transient_to_detached`` makes it.

    Merging into the session cost more than the rest of a call's scope check (~60 us a row), and the
    constructor's attribute events twice what this costs: the values go in as loaded, not as changes.
    A new instance has nothing committed or expired, and these models map no relationships, so of
    ``make_transient_to_detached`` only its identity key is left to set (its other steps were a third
    of a cached call's ORM work).
    """
    manager = manager_of_class(model)
    row: R = manager.new_instance()
    row.__dict__.update(values)
    manager.state_getter()(row).key = manager.mapper.identity_key_from_primary_key((values["id"],))
    return row


async def list_environments(session: AsyncSession, org: Organization) -> list[Environment]:
    rows = await session.scalars(
        select(Environment).where(Environment.organization_id == org.id).order_by(Environment.slug)
    )
    return list(rows)


async def create_organization(session: AsyncSession, slug: str, name: str | None = None) -> Organization:
    if not is_slug(slug):
        raise InvalidInput(f"organization id {slug!r} must be a slug (lowercase letters, digits, '-')")
    org = Organization(slug=slug, name=name or slug)
    session.add(org)
    await session.flush()
    return org


async def create_environment(
    session: AsyncSession, org: Organization, slug: str, name: str | None = None
) -> Environment:
    if not is_slug(slug):
        raise InvalidInput(f"environment id {slug!r} must be a slug (lowercase letters, digits, '-')")
    env = Environment(organization_id=org.id, slug=slug, name=name or slug)
    session.add(env)
    await session.flush()
    return env


@dataclass(frozen=True)
class Bootstrap:
    organization: Organization
    environment: Environment
    setup_token: str | None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def bootstrap(
    session: AsyncSession, org_slug: str, env_slug: str, *, issue_setup_token: bool = True
) -> Bootstrap:
    """Ensure the default organization and environment exist.

    While the organization has no owner, a fresh one-time setup token is issued (only its hash is
    stored; earlier unused ones stop working).
    """
    org = await session.scalar(select(Organization).where(Organization.slug == org_slug))
    if org is None:
        org = await create_organization(session, org_slug, org_slug.capitalize())
    env = await session.scalar(
        select(Environment).where(Environment.organization_id == org.id, Environment.slug == env_slug)
    )
    if env is None:
        env = await create_environment(session, org, env_slug)
    owners = await session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == org.id, Membership.role == "owner")
    )
    token: str | None = None
    if not owners and issue_setup_token:
        for old in await session.scalars(
            select(SetupToken).where(SetupToken.organization_id == org.id, SetupToken.used_at.is_(None))
        ):
            await session.delete(old)
        token = secrets.token_urlsafe(32)
        session.add(SetupToken(organization_id=org.id, token_hash=hash_secret(token)))
        await session.flush()
    return Bootstrap(org, env, token)
