"""Consent: what a person let a client do in one environment, remembered until they revoke it.

A remembered consent covers a later request of the same client in the same environment for the same or
fewer scopes; anything more is asked again. Revoking a consent revokes the refresh-token families (and so
the access tokens) that client holds for that person in that environment.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.errors import NotFound
from testgate.oauth import refresh, scopes
from testgate.store.base import utcnow
from testgate.store.oauth import Consent, RefreshToken


async def _row(session: AsyncSession, user_id: str, client_pk: str, environment_id: str) -> Consent | None:
    return await session.scalar(
        select(Consent).where(
            Consent.user_id == user_id, Consent.client_pk == client_pk, Consent.environment_id == environment_id
        )
    )


async def covers(
    session: AsyncSession, user_id: str, client_pk: str, environment_id: str, wanted: tuple[str, ...]
) -> bool:
    """The person already allowed this client at least ``wanted`` in this environment."""
    row = await _row(session, user_id, client_pk, environment_id)
    return row is not None and row.revoked_at is None and scopes.within(wanted, row.scope)


async def grant(
    session: AsyncSession, user_id: str, client_pk: str, environment_id: str, wanted: tuple[str, ...]
) -> Consent:
    """Remember the consent (adding to what an earlier, unrevoked one allowed)."""
    row = await _row(session, user_id, client_pk, environment_id)
    if row is None:
        row = Consent(user_id=user_id, client_pk=client_pk, environment_id=environment_id, scope="")
        session.add(row)
    held = set(row.scope.split()) if row.revoked_at is None else set()
    row.scope = " ".join(s for s in scopes.SUPPORTED if s in held | set(wanted))
    row.granted_at, row.revoked_at = utcnow(), None
    await session.flush()
    return row


async def for_user(session: AsyncSession, user_id: str) -> list[Consent]:
    """The person's consents, newest first (for a console page)."""
    rows = await session.scalars(select(Consent).where(Consent.user_id == user_id).order_by(Consent.granted_at.desc()))
    return list(rows)


async def revoke(session: AsyncSession, consent_id: str, user_id: str) -> Consent:
    """Revoke the person's consent and every token family the client holds under it.

    MUST raise ``NotFound`` for another person's consent, as for an unknown one.
    """
    row = await session.get(Consent, consent_id)
    if row is None or row.user_id != user_id:
        raise NotFound("consent not found")
    row.revoked_at = row.revoked_at or utcnow()
    families = await session.scalars(
        select(RefreshToken.family_id)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.client_pk == row.client_pk,
            RefreshToken.environment_id == row.environment_id,
            RefreshToken.revoked_at.is_(None),
        )
        .distinct()
    )
    for family in list(families):
        await refresh.revoke_family(session, family)
    await session.flush()
    return row
