"""A known token refused (expired, revoked, rotated out, creator gone) is audited as ``auth.token_rejected``."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from testgate.access import tokens
from testgate.access.principal import Role
from testgate.access.verifier import verify_bearer
from testgate.errors import Unauthenticated
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow
from testgate.store.tenancy import User
from testgate.store.tokens import ApiTokenRow

from .conftest import ORG, Mint, People, bearer


async def _rejections(platform: Platform) -> list[AuditEventRow]:
    async with platform.db.session() as s:
        rows = await s.scalars(select(AuditEventRow).where(AuditEventRow.action == "auth.token_rejected"))
        return list(rows)


async def _expire(platform: Platform, secret: str) -> None:
    async with platform.db.session() as s:
        await s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.secret_hash == tokens.digest(secret))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


async def test_an_expired_token_presented_is_audited_as_denied_with_the_token_named(
    platform: Platform, people: People, owner_email: str, mint: Mint
) -> None:
    secret = await mint(owner_email, role="admin", name="nightly")
    await _expire(platform, secret)

    with pytest.raises(Unauthenticated, match="the token expired"):
        await verify_bearer(platform, secret, source="192.0.2.9")

    (event,) = await _rejections(platform)
    assert (event.outcome, event.actor_type, event.actor_name, event.reason) == (
        "denied",
        "api_token",
        "nightly",
        "the token expired",
    )
    assert event.source_address == "192.0.2.9"
    assert event.resources == [{"type": "api_token", "id": event.actor_id, "name": "nightly"}]
    assert secret not in str(event.arguments) + event.reason


async def test_a_revoked_token_and_a_rotated_out_secret_are_audited_as_rejections(
    platform: Platform, people: People, owner_email: str, mint: Mint
) -> None:
    revoked = await mint(owner_email, role="admin", name="revoked")
    rotated = await mint(owner_email, role="admin", name="rotated")
    await people.call(owner_email, "token.revoke", {"id": (await people.token_principal(revoked)).id})
    await people.call(owner_email, "token.rotate", {"id": (await people.token_principal(rotated)).id})

    for secret in (revoked, rotated):
        with pytest.raises(tokens.TokenRejected):
            await verify_bearer(platform, secret, source=None)

    assert sorted((e.actor_name, e.reason) for e in await _rejections(platform)) == [
        ("revoked", "the token was revoked"),
        ("rotated", "the token was rotated; this secret is no longer valid"),
    ]


async def test_a_token_whose_creator_was_disabled_is_audited_as_a_rejection(
    platform: Platform, people: People, owner_email: str
) -> None:
    await people.add("ada@acme.test", Role.ADMIN)
    secret = (await people.call("ada@acme.test", "token.create", {"name": "ada-ci", "role": "admin"})).secret
    async with platform.db.session() as s:
        await s.execute(update(User).where(User.email == "ada@acme.test").values(disabled=True))

    with pytest.raises(Unauthenticated, match="creator no longer has access"):
        await verify_bearer(platform, secret, source=None)

    assert [e.actor_name for e in await _rejections(platform)] == ["ada-ci"]


async def test_an_unknown_or_malformed_token_is_refused_without_an_event(platform: Platform) -> None:
    for secret in (tokens.generate(), "tgp_nonsense"):
        with pytest.raises(Unauthenticated):
            await verify_bearer(platform, secret, source=None)

    assert await _rejections(platform) == []


async def test_over_rest_a_rejected_token_answers_401_without_naming_the_token(
    platform: Platform, people: People, owner_email: str, mint: Mint, client: httpx.AsyncClient
) -> None:
    secret = await mint(owner_email, role="admin", name="leaky")
    await _expire(platform, secret)

    response = await client.get(f"{ORG}/tokens", headers=bearer(secret))

    assert response.status_code == 401
    body = response.json()
    assert body["detail"] == "the token expired"
    assert "leaky" not in response.text
    assert "token_id" not in body
    assert "organization_id" not in body
    (event,) = await _rejections(platform)
    assert event.transport == "http"
    async with platform.db.session() as s:
        assert (
            await s.scalar(select(func.count()).select_from(AuditEventRow).where(AuditEventRow.action == "token.list"))
            == 0
        )
