"""The authorization request (RFC 6749 §4.1.1 with OAuth 2.1 and MCP rules) and the code it ends in.

Validation order matters (RFC 6749 §4.1.2.1): a bad ``client_id`` or ``redirect_uri`` is shown to the person
and never redirected; every later error is redirected to the client with ``state`` and ``iss`` (RFC 9207).
Required here: ``response_type=code``; PKCE with ``code_challenge_method=S256`` only (OAuth 2.1 §4.1.1, MCP
authorization: "plain" and a missing challenge are refused); a ``resource`` (RFC 8707) that is one of this
server's environment URLs, which becomes the token audience. Parameters MUST NOT repeat (RFC 6749 §3.1).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Permission, Role
from testgate.config import Settings
from testgate.errors import NotFound
from testgate.oauth import clients, redirects, scopes
from testgate.oauth.cimd_fetch import Fetcher
from testgate.oauth.errors import InvalidClient
from testgate.oauth.metadata import Target, issuer, parse_resource
from testgate.platform import tenancy
from testgate.store.base import utcnow
from testgate.store.db import Database
from testgate.store.oauth import AuthorizationCode, OAuthClient
from testgate.store.tenancy import Environment, EnvironmentGrant, Membership, Organization

MAX_QUERY = 8192
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA256(verifier)) without padding: RFC 7636 §4.2


class Untrusted(Exception):
    """The client or redirect URI can't be trusted: tell the person, never redirect (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


class Redirected(Exception):
    """An error for the client, delivered on its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True)
class Request:
    """A validated authorization request."""

    client: OAuthClient
    redirect_uri: str
    redirect_given: bool
    state: str | None
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str
    target: Target
    organization: Organization
    environment: Environment
    prompt: frozenset[str]
    query: str

    @property
    def scope(self) -> str:
        """The granted scopes as one space-separated string (RFC 6749 §3.3)."""
        return " ".join(self.scopes)


def with_params(uri: str, params: dict[str, str | None]) -> str:
    """``uri`` with ``params`` appended to its query, which RFC 6749 §3.1.2 says MUST be kept."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def single(query: str) -> dict[str, str]:
    """The query's parameters; ``Untrusted`` if any repeats or the query is oversized (RFC 6749 §3.1)."""
    if len(query) > MAX_QUERY:
        raise Untrusted("invalid_request", "the authorization request is too long")
    pairs = parse_qsl(query, keep_blank_values=True)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise Untrusted("invalid_request", f"the parameter {name!r} is repeated")
        params[name] = value
    return params


async def parse(db: Database, fetcher: Fetcher, settings: Settings, query: str) -> Request:
    """Validate an authorization request; ``Untrusted`` or ``Redirected`` when it is refused."""
    params = single(query)
    try:
        client = await clients.resolve(db, fetcher, settings.oauth, params.get("client_id", ""))
    except InvalidClient as exc:
        raise Untrusted("invalid_client", exc.message) from None
    given = params.get("redirect_uri")
    if given is None and len(client.redirect_uris) != 1:
        raise Untrusted("invalid_request", "redirect_uri is required: the client registered several")
    redirect_uri = given if given is not None else str(client.redirect_uris[0])
    if not redirects.matches(list(client.redirect_uris), redirect_uri):
        raise Untrusted("invalid_request", "the redirect_uri is not one the client registered")
    state = params.get("state")

    def refuse(error: str, description: str) -> Redirected | Untrusted:
        return early(settings, redirect_uri, state, error, description)

    if params.get("response_type") != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    challenge = params.get("code_challenge")
    if not challenge:
        raise refuse("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
    if params.get("code_challenge_method") != "S256":
        raise refuse("invalid_request", "code_challenge_method must be S256 (plain is not accepted)")
    if not _CHALLENGE.match(challenge):
        raise refuse("invalid_request", "code_challenge must be a base64url SHA-256 digest (43 characters)")
    try:
        wanted = scopes.parse(params.get("scope"))
    except scopes.UnknownScope as exc:
        raise refuse("invalid_scope", str(exc)) from None
    if client.scope and not scopes.within(wanted, client.scope):
        raise refuse("invalid_scope", "the client did not register for that scope")
    resource = params.get("resource")
    if not resource:
        raise refuse("invalid_request", "resource is required (RFC 8707): the environment's MCP URL")
    target = parse_resource(settings, resource)
    if target is None:
        raise refuse("invalid_target", "the resource is not one of this server's environments")
    try:
        async with db.session() as session:
            org = await tenancy.organization_by_slug(session, target.organization)
            env = await tenancy.environment_by_slug(session, org, target.environment)
    except NotFound:
        raise refuse("invalid_target", "the resource's environment does not exist") from None
    prompt = frozenset(params.get("prompt", "").split())
    return Request(
        client, redirect_uri, given is not None, state, challenge, wanted, resource, target, org, env, prompt, query
    )


def error_location(settings: Settings, redirect_uri: str, state: str | None, error: str, description: str) -> str:
    """The redirect that tells the client ``error`` (RFC 6749 §4.1.2.1, with RFC 9207 ``iss``)."""
    params = {"error": error, "error_description": description, "state": state, "iss": issuer(settings)}
    return with_params(redirect_uri, params)


def early(
    settings: Settings, redirect_uri: str, state: str | None, error: str, description: str
) -> Redirected | Untrusted:
    """An error found before the person did anything with this request: for the client on its redirect URI
    (RFC 6749 §4.1.2.1), unless that URI is a web address.

    Anyone may register a client (DCR) or publish one (CIMD), so a web redirect URI is untrusted: sending
    every error straight on would make this server an open redirector to any site (RFC 9700 §4.11.2). Such
    errors are shown here instead. Loopback and private-use (app) URIs lead back to the person's own machine.
    """
    if urlsplit(redirect_uri).scheme == "https":
        host = urlsplit(redirect_uri).hostname or "?"
        return Untrusted(error, f"{description}. (The request came from an application at {host}.)")
    return Redirected(error_location(settings, redirect_uri, state, error, description))


def refusal(request: Request, settings: Settings, error: str, description: str) -> str:
    """``error_location`` for a validated request."""
    return error_location(settings, request.redirect_uri, request.state, error, description)


async def held_permission(session: AsyncSession, user_id: str, org_id: str, env_id: str) -> Permission:
    """The user's own permission in the environment (owners and admins hold admin)."""
    membership = await session.scalar(
        select(Membership).where(Membership.organization_id == org_id, Membership.user_id == user_id)
    )
    if membership is None:
        return Permission.NONE
    if membership.role in (Role.OWNER.value, Role.ADMIN.value):
        return Permission.ADMIN
    grant = await session.scalar(
        select(EnvironmentGrant.permission).where(
            EnvironmentGrant.user_id == user_id, EnvironmentGrant.environment_id == env_id
        )
    )
    return Permission.parse(grant) if grant else Permission.NONE


async def issue_code(session: AsyncSession, settings: Settings, request: Request, user_id: str) -> str:
    """A single-use code for ``request``, valid ``code_ttl`` seconds; only its hash is stored."""
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=clients.digest(code),
            client_pk=request.client.id,
            user_id=user_id,
            organization_id=request.organization.id,
            environment_id=request.environment.id,
            resource=request.resource,
            scope=request.scope,
            redirect_uri=request.redirect_uri if request.redirect_given else None,
            code_challenge=request.code_challenge,
            expires_at=utcnow() + timedelta(seconds=settings.oauth.code_ttl),
        )
    )
    await session.flush()
    return code


def success(request: Request, settings: Settings, code: str) -> str:
    """The redirect carrying the code, ``state`` and RFC 9207 ``iss``."""
    return with_params(request.redirect_uri, {"code": code, "state": request.state, "iss": issuer(settings)})
