"""Access-token verification refuses every forgery and misuse RFC 8725, RFC 9068 and RFC 8707 name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import delete, select, update

from testgate.access.principal import Permission, Role
from testgate.access.verifier import verify_bearer
from testgate.errors import Unauthenticated
from testgate.oauth import keys
from testgate.oauth.settings import OAuthSettings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.oauth import SigningKey
from testgate.store.tenancy import EnvironmentGrant, Membership, User

MCP = "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp"
STAGING = "http://127.0.0.1:8080/organizations/acme/environments/staging/mcp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(header + "==")), json.loads(base64.urlsafe_b64decode(payload + "==")))


async def signing_key(platform: Platform) -> tuple[SigningKey, ECKey]:
    async with platform.db.session() as session:
        row = await keys.active_key(session, platform.settings.oauth)
    return row, keys.private_key(row, platform.settings.oauth)


async def resign(platform: Platform, token: str, **claims: Any) -> str:
    """The token's claims with ``claims`` changed, validly signed with the server's own key."""
    header, payload = parts(token)
    _, key = await signing_key(platform)
    return jwt.encode(header, {**payload, **claims}, key, algorithms=["ES256"])


async def refused(platform: Platform, token: str, match: str, resource: str | None = MCP) -> None:
    with pytest.raises(Unauthenticated, match=match):
        await verify_bearer(platform, token, source=None, resource=resource)


@pytest.fixture
def oauth_settings() -> OAuthSettings:
    """Every test here runs with encrypted signing keys, as replicas sharing a database should."""
    return OAuthSettings(key_encryption_secret="a shared secret for the replicas")  # type: ignore[arg-type]


@pytest.fixture
async def token(flow: Any, make_user: Any) -> str:
    await make_user()
    client_id = (await flow.register())["client_id"]
    return str((await flow.tokens(client_id))["access_token"])


async def test_the_token_carries_the_rfc_9068_claims(token: str) -> None:
    header, claims = parts(token)
    assert header["alg"] == "ES256"
    assert header["typ"] == "at+jwt"
    assert header["kid"]
    assert claims["iss"] == "http://127.0.0.1:8080"
    assert claims["aud"] == MCP
    assert {"sub", "exp", "iat", "nbf", "jti", "scope", "client_id", "org", "env"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900


# RFC 8725 §2.1, §3.1: "none" is never an accepted algorithm.
async def test_an_unsigned_alg_none_token_is_refused(platform: Platform, token: str) -> None:
    header, claims = parts(token)
    forged = b64(json.dumps({**header, "alg": "none"}).encode()) + "." + b64(json.dumps(claims).encode())
    await refused(platform, forged + ".", "neither")
    await refused(platform, forged + ".c2ln", "algorithm")


# RFC 8725 §2.1 algorithm confusion: HS256 keyed with the public key is refused, not HMAC-verified.
async def test_an_hs256_token_signed_with_the_public_key_is_refused(platform: Platform, token: str) -> None:
    header, claims = parts(token)
    row, _ = await signing_key(platform)
    public_pem = ECKey.import_key(row.public_jwk).as_pem(private=False)
    for secret in (public_pem, json.dumps(row.public_jwk).encode()):
        signing_input = b64(json.dumps({**header, "alg": "HS256"}).encode()) + "." + b64(json.dumps(claims).encode())
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        await refused(platform, signing_input + "." + b64(mac), "algorithm")


# RFC 7515 §4.1.4: the kid must name one of our keys; a key of the attacker's is not trusted.
async def test_a_missing_or_unknown_kid_is_refused(platform: Platform, token: str) -> None:
    header, claims = parts(token)
    attacker = ECKey.generate_key("P-256", auto_kid=True)
    own_kid = jwt.encode({**header, "kid": attacker.kid}, claims, attacker, algorithms=["ES256"])
    await refused(platform, own_kid, "unknown")
    no_kid = {k: v for k, v in header.items() if k != "kid"}
    await refused(platform, jwt.encode(no_kid, claims, attacker, algorithms=["ES256"]), "unknown")
    # Our kid with the attacker's signature: the signature check fails.
    await refused(platform, jwt.encode(header, claims, attacker, algorithms=["ES256"]), "not valid")


# RFC 9068 §2.1/§4: only at+jwt typed tokens are access tokens.
async def test_a_jwt_of_another_type_is_refused(platform: Platform, token: str) -> None:
    header, claims = parts(token)
    _, key = await signing_key(platform)
    await refused(platform, jwt.encode({**header, "typ": "JWT"}, claims, key, algorithms=["ES256"]), "access token")


# RFC 7519 §4.1.4 / §4.1.5: exp and nbf, with a few seconds of leeway.
async def test_an_expired_or_not_yet_valid_token_is_refused(platform: Platform, token: str) -> None:
    _, claims = parts(token)
    await refused(platform, await resign(platform, token, exp=claims["iat"] - 60), "not valid")
    await refused(platform, await resign(platform, token, nbf=claims["iat"] + 600), "not valid")
    await refused(platform, await resign(platform, token, exp=None), "not valid")


# RFC 9068 §4: the issuer must be this server.
async def test_a_token_from_another_issuer_is_refused(platform: Platform, token: str) -> None:
    await refused(platform, await resign(platform, token, iss="https://evil.example"), "another server")


# RFC 8707 / MCP authorization "Token Audience Binding": a token for environment A is refused at environment B.
async def test_a_token_for_one_environment_is_refused_at_another(platform: Platform, token: str) -> None:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        await tenancy.create_environment(session, org, "staging")
    await refused(platform, token, "another resource", STAGING)
    # Even re-signed with the other audience, the env claim still names dev: refused.
    await refused(platform, await resign(platform, token, aud=STAGING), "another environment", STAGING)
    # And without a resource to compare, nothing is accepted (MUST fail closed).
    await refused(platform, token, "no resource", None)


async def test_a_token_of_a_disabled_or_removed_user_is_refused(platform: Platform, token: str) -> None:
    _, claims = parts(token)
    async with platform.db.session() as session:
        await session.execute(update(User).where(User.id == claims["sub"]).values(disabled=True))
    await refused(platform, token, "no longer has access")
    async with platform.db.session() as session:
        await session.execute(update(User).where(User.id == claims["sub"]).values(disabled=False))
        await session.execute(delete(Membership).where(Membership.user_id == claims["sub"]))
    await refused(platform, token, "no longer has access")


# MCP authorization / testgate access model: effective permission = min(scope, the user's role now).
async def test_the_effective_permission_is_the_lower_of_scope_and_role(
    flow: Any, make_user: Any, platform: Platform
) -> None:
    await make_user("owner@example.com", role=Role.OWNER, grants={})
    await make_user("reader@example.com", grants={"dev": Permission.READ})
    client_id = (await flow.register())["client_id"]
    owner = await flow.tokens(client_id, "owner@example.com", scope="testgate:run")
    flow.sign_out()
    reader = await flow.tokens(client_id, "reader@example.com", scope="testgate:write")
    owner_p = await verify_bearer(platform, owner["access_token"], source=None, resource=MCP)
    reader_p = await verify_bearer(platform, reader["access_token"], source=None, resource=MCP)
    dev = next(iter(owner_p.grants))
    assert owner_p.permission_in(dev) == Permission.RUN
    assert not owner_p.is_org_admin
    assert owner_p.permission_in(None) == Permission.NONE  # confined to the token's environment
    assert reader_p.permission_in(dev) == Permission.READ
    # A demotion takes effect on the next request, without waiting for the token to expire.
    async with platform.db.session() as session:
        await session.execute(update(EnvironmentGrant).values(permission="read"))
        user_id = await session.scalar(select(User.id).where(User.email == "owner@example.com"))
        await session.execute(update(Membership).where(Membership.user_id == user_id).values(role="member"))
    owner_p = await verify_bearer(platform, owner["access_token"], source=None, resource=MCP)
    assert owner_p.permission_in(dev) == Permission.NONE


async def test_after_a_rotation_old_tokens_verify_and_new_ones_use_the_new_key(
    platform: Platform, token: str, flow: Any
) -> None:
    async with platform.db.session() as session:
        new = await keys.rotate(session, platform.settings.oauth)
    assert await verify_bearer(platform, token, source=None, resource=MCP)
    jwks = (await flow.http.get("/oauth/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {parts(token)[0]["kid"], new.kid}
    assert all("d" not in k for k in jwks["keys"])
    # Once every token of the retired key has expired, the key is pruned and its tokens no longer verify.
    later = utcnow() + timedelta(seconds=platform.settings.oauth.access_token_ttl + 60)
    async with platform.db.session() as session:
        assert await keys.prune(session, platform.settings.oauth, later) == 1
    await refused(platform, token, "unknown")


async def test_signing_keys_are_stored_encrypted_when_a_secret_is_set(platform: Platform, token: str) -> None:
    async with platform.db.session() as session:
        row = (await session.scalars(select(SigningKey))).one()
    assert row.encrypted
    assert "ENCRYPTED PRIVATE KEY" in row.private_pem
    with pytest.raises(TypeError, match="encrypted"):
        serialization.load_pem_private_key(row.private_pem.encode(), password=None)
