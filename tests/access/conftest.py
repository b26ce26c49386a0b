"""Access fixtures: people with roles and grants in ``acme``, their principals, and dispatch as them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select

import testgate.operations.access
import testgate.operations.members  # noqa: F401  (declares the member operations)
from testgate.access import members, tokens
from testgate.access.principal import Permission, Principal, Role
from testgate.app import create_app
from testgate.config import Settings
from testgate.operations.context import Call, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.tenancy import EnvironmentGrant, Membership, User

ORG = "/api/v1/organizations/acme"


async def accept(message: str) -> ConfirmOutcome:
    return "accepted"


@dataclass
class People:
    """Creates people in ``acme`` and acts as them (kind ``user``, as the console and OAuth do)."""

    platform: Platform

    async def add(self, email: str, role: Role = Role.MEMBER, **grants: Permission) -> str:
        """A user with ``role`` and ``grants`` by environment slug (``dev=Permission.RUN``); returns the id."""
        async with self.platform.db.session() as s:
            org = await tenancy.organization_by_slug(s, "acme")
            envs = {e.slug: e for e in await tenancy.list_environments(s, org)}
            for slug in set(grants) - set(envs):
                envs[slug] = await tenancy.create_environment(s, org, slug)
            user = User(email=email, name=email.partition("@")[0], password_hash=None)
            s.add(user)
            await s.flush()
            s.add(Membership(organization_id=org.id, user_id=user.id, role=role.value))
            for slug, perm in grants.items():
                s.add(EnvironmentGrant(environment_id=envs[slug].id, user_id=user.id, permission=perm.label))
            return user.id

    async def principal(self, email: str, cap: Permission = Permission.ADMIN) -> Principal:
        """The person as they are now (role and grants read from the store)."""
        async with self.platform.db.session() as s:
            org = await tenancy.organization_by_slug(s, "acme")
            member = await members.find(s, org, email)
        uid = member.user.id
        return Principal("user", uid, email, org.id, member.role, grants=member.grants, cap=cap, user_id=uid)

    async def call(self, who: str | Principal, name: str, args: dict[str, Any] | None = None) -> Any:
        """Dispatch ``name`` as ``who`` (an email address, or a principal), confirming when asked."""
        principal = who if isinstance(who, Principal) else await self.principal(who)
        return await dispatch(self.platform, Call(principal, "acme", None, confirm=accept), name, args or {})

    async def token_principal(self, secret: str, **kwargs: Any) -> Principal:
        async with self.platform.db.session() as s:
            return await tokens.authenticate(s, secret, **kwargs)

    async def last_event(self, action: str) -> AuditEventRow:
        async with self.platform.db.session() as s:
            event = await s.scalar(
                select(AuditEventRow).where(AuditEventRow.action == action).order_by(AuditEventRow.seq.desc()).limit(1)
            )
        assert event is not None, f"no {action} event"
        return event


@pytest.fixture
def people(platform: Platform) -> People:
    return People(platform)


@pytest.fixture
async def owner_email(people: People) -> str:
    await people.add("olive@acme.test", Role.OWNER)
    return "olive@acme.test"


@pytest.fixture
def app(settings: Settings, platform: Platform) -> FastAPI:
    return create_app(settings, platform=platform)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


Mint = Callable[..., Awaitable[str]]


@pytest.fixture
def mint(people: People) -> Mint:
    """A token created through ``token.create`` as ``who``; returns its secret."""

    async def make(who: str, **args: Any) -> str:
        created = await people.call(who, "token.create", {"name": "t", "expires": "P1D", **args})
        assert isinstance(created, BaseModel)
        secret = created.model_dump()["secret"]
        assert isinstance(secret, str)
        return secret

    return make


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
