"""Authentication events of the authorization server, each written to the audit chain in its own transaction.

Actions: ``oauth.login`` (allowed or denied), ``oauth.consent_granted``, ``oauth.consent_denied``,
``oauth.consent_revoked``, ``oauth.client_registered``, ``oauth.token_issued``, ``oauth.token_revoked``,
``oauth.code_replay_detected`` and ``oauth.refresh_reuse_detected`` (the family was revoked). Pages record
transport ``web``; the token, registration and revocation endpoints ``rest``. No secret is ever an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.audit import recorder
from testgate.http.origin import origin_of
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.tenancy import Membership, User


@dataclass
class AuthEvent:
    """What happened, to whom, by whom."""

    action: str
    outcome: recorder.Outcome
    organization_id: str | None
    actor_type: str
    actor_id: str | None
    actor_name: str = ""
    environment_id: str | None = None
    resources: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


async def record(platform: Platform, request: Request, event: AuthEvent, *, transport: str) -> None:
    """Append ``event`` to its organization's chain.

    An event that names no organization is a person's (a sign-in, a sign-out): it goes to the chain of
    every organization the person belongs to, so each one's admins see the attempts on their members and
    no other organization learns of them; a sign-in as nobody known goes to the default organization's.
    """
    async with platform.db.session() as session:
        org_ids = [event.organization_id] if event.organization_id else await _person_organizations(session, event)
        if not org_ids:
            org_ids = [(await tenancy.organization_by_slug(session, platform.settings.default_organization)).id]
        for org_id in sorted(org_ids):  # one order, so two such writes never wait on each other's chain locks
            await _append(session, request, event, org_id, transport)


async def _person_organizations(session: AsyncSession, event: AuthEvent) -> list[str]:
    """The organizations of the person an event is about: by user id, else by the address given."""
    if event.actor_type != "user":
        return []
    user_id = event.actor_id
    address = event.actor_name.strip().lower()
    if user_id is None and address and "\x00" not in address:  # no address holds U+0000 (PostgreSQL refuses it)
        user_id = await session.scalar(select(User.id).where(User.email == address))
    if user_id is None:
        return []
    return list(await session.scalars(select(Membership.organization_id).where(Membership.user_id == user_id)))


async def _append(session: AsyncSession, request: Request, event: AuthEvent, org_id: str, transport: str) -> None:
    await recorder.record(
        session,
        recorder.Event(
            organization_id=org_id,
            action=event.action,
            outcome=event.outcome,
            transport=transport,
            actor_type=event.actor_type,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            environment_id=event.environment_id,
            resources=event.resources,
            reason=event.reason,
            arguments=event.arguments,
            **origin_of(request.scope),
        ),
    )


def client_resource(client_id: str, name: str) -> dict[str, str]:
    """An OAuth client as an event's affected resource."""
    return {"type": "oauth_client", "id": client_id, "name": name}
