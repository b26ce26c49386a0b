"""The token endpoint (RFC 6749 §3.2): ``authorization_code`` with PKCE, and ``refresh_token`` with rotation.

A code is consumed before anything else is checked, so a wrong verifier or redirect URI burns it. A code
presented a second time revokes everything its first redemption issued (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3).
A verifier MUST hash to the code's S256 challenge (RFC 7636 §4.6); ``redirect_uri`` MUST equal the one of
the authorization request when it had one (RFC 6749 §4.1.3); ``resource``, when sent, MUST equal the code's.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Permission
from testgate.config import Settings
from testgate.oauth import clients, events, pkce, refresh
from testgate.oauth.authorize import held_permission
from testgate.oauth.context import fetcher_of, platform_of
from testgate.oauth.errors import NO_STORE, OAuthError
from testgate.oauth.form import client_credentials, form_fields
from testgate.oauth.jwt import Grant
from testgate.oauth.refresh import Reuse, Tokens
from testgate.store.base import utcnow
from testgate.store.oauth import AuthorizationCode, OAuthClient

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


@dataclass(frozen=True)
class Replay:
    """A used code came back; what it issued is now revoked."""

    code: AuthorizationCode


async def redeem_code(
    session: AsyncSession, settings: Settings, client: OAuthClient, fields: dict[str, str]
) -> Tokens | Replay | OAuthError:
    """Exchange a code for tokens; returned, not raised, so the consumption commits either way."""
    code_hash = clients.digest(fields.get("code", ""))
    now = utcnow()
    consumed = await session.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.code_hash == code_hash, AuthorizationCode.used_at.is_(None))
        .values(used_at=now)
    )
    row = await session.scalar(select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash))
    if row is None or row.client_pk != client.id:
        return OAuthError("the authorization code is not valid", error="invalid_grant")
    if consumed.rowcount != 1:  # type: ignore[attr-defined]
        if row.family_id is not None:
            await refresh.revoke_family(session, row.family_id)
        return Replay(row)
    if row.expires_at <= now:
        return OAuthError("the authorization code expired", error="invalid_grant")
    if row.redirect_uri is not None and fields.get("redirect_uri") != row.redirect_uri:
        return OAuthError("redirect_uri differs from the authorization request's", error="invalid_grant")
    verifier = fields.get("code_verifier", "")
    if not _VERIFIER.match(verifier):
        return OAuthError("code_verifier is missing or malformed (RFC 7636 §4.1)", error="invalid_grant")
    if not secrets.compare_digest(pkce.s256(verifier), row.code_challenge):
        return OAuthError("the code_verifier does not match the code_challenge", error="invalid_grant")
    if fields.get("resource") not in (None, row.resource):
        return OAuthError("resource differs from the authorization request's", error="invalid_target")
    if await held_permission(session, row.user_id, row.organization_id, row.environment_id) == Permission.NONE:
        return OAuthError("the user no longer has access to this environment", error="invalid_grant")
    grant = Grant(row.user_id, client.client_id, row.organization_id, row.environment_id, row.resource, row.scope)
    row.family_id = refresh.new_family()
    return await refresh.issue(session, settings, grant, client.id, family_id=row.family_id, parent_id=None)


async def refresh_tokens(
    session: AsyncSession, settings: Settings, client: OAuthClient, fields: dict[str, str]
) -> Tokens | Reuse | OAuthError:
    """Rotate a refresh token (RFC 6749 §6, RFC 9700 §4.14.2)."""
    outcome = await refresh.rotate(
        session, settings, fields.get("refresh_token", ""), client.id, fields.get("scope"), fields.get("resource")
    )
    if isinstance(outcome, Reuse | OAuthError):
        return outcome
    row, scope = outcome
    if await held_permission(session, row.user_id, row.organization_id, row.environment_id) == Permission.NONE:
        await refresh.revoke_family(session, row.family_id)
        return OAuthError("the user no longer has access to this environment", error="invalid_grant")
    grant = Grant(row.user_id, client.client_id, row.organization_id, row.environment_id, row.resource, scope)
    return await refresh.issue(
        session, settings, grant, client.id, family_id=row.family_id, parent_id=row.id, refresh_scope=row.scope
    )


async def token_endpoint(request: Request) -> JSONResponse:
    """``POST /oauth/token``."""
    platform = platform_of(request)
    settings = platform.settings
    fields = await form_fields(request)
    credentials = client_credentials(request, fields)
    client = await clients.resolve(platform.db, fetcher_of(request), settings.oauth, credentials.client_id)
    clients.check_secret(client, credentials)
    grant_type = fields.get("grant_type")
    if not grant_type:
        raise OAuthError("grant_type is required")
    # Every client may refresh: OAuth 2.1 §4.3 leaves refresh tokens to the server, and MCP clients rely on them.
    async with platform.db.sessions() as session:
        if grant_type == "authorization_code":
            outcome: Tokens | Replay | Reuse | OAuthError = await redeem_code(session, settings, client, fields)
        elif grant_type == "refresh_token":
            outcome = await refresh_tokens(session, settings, client, fields)
        else:
            raise OAuthError("grant_type must be authorization_code or refresh_token", error="unsupported_grant_type")
        await session.commit()
    await _audit(request, client, outcome)
    if isinstance(outcome, Replay | Reuse):
        raise OAuthError("this grant was already used; every token it issued is now revoked", error="invalid_grant")
    if isinstance(outcome, OAuthError):
        raise outcome
    return JSONResponse(outcome.body(settings), headers=NO_STORE)


async def _audit(request: Request, client: OAuthClient, outcome: Tokens | Replay | Reuse | OAuthError) -> None:
    """One event per issuance, and one per detected replay (which revoked a family)."""
    if isinstance(outcome, OAuthError):
        return
    if isinstance(outcome, Tokens):
        grant = outcome.grant
        org, env, user = grant.organization_id, grant.environment_id, grant.user_id
        event = events.AuthEvent("oauth.token_issued", "allowed", org, "client", client.client_id, client.client_name)
        event.arguments = {"scope": grant.scope, "resource": grant.resource, "family": outcome.family_id}
    else:
        stored = outcome.code if isinstance(outcome, Replay) else outcome.row
        org, env, user = stored.organization_id, stored.environment_id, stored.user_id
        action = "oauth.code_replay_detected" if isinstance(outcome, Replay) else "oauth.refresh_reuse_detected"
        event = events.AuthEvent(action, "denied", org, "client", client.client_id, client.client_name)
        event.reason = "a used credential was presented again; the tokens it issued were revoked"
    event.environment_id = env
    event.resources = [events.client_resource(client.client_id, client.client_name), {"type": "user", "id": user}]
    await events.record(platform_of(request), request, event, transport="rest")
