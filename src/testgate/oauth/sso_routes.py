"""Signing in through the upstream OpenID Connect provider (``sso``): the two browser endpoints.

    GET /oauth/sso/start?request=<authorization request>   then resume that OAuth authorization
    GET /oauth/sso/start?next=/ui/...                      then open that console page (default ``/ui``)
    GET /oauth/sso/callback                                the provider's answer (OIDC Core §3.1.2.5)

The person is the account with the provider's verified email; without one (or without a membership in the
default organization) they are provisioned with the configured role and grants when ``provision`` allows.
Then the authorization server's session is set (and the console's, for a console page), exactly as a
password sign-in would. Events: ``auth.sso_login`` (allowed, or denied with the reason) and
``member.provisioned``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access import users
from testgate.config import Settings
from testgate.errors import InvalidInput, NotFound
from testgate.oauth import browser, events, pages, sso
from testgate.oauth.context import fetcher_of, platform_of
from testgate.oauth.metadata import AUTHORIZE
from testgate.oauth.settings import UpstreamSettings
from testgate.oauth.sso import Identity, Pending, SsoRefused
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.tenancy import EnvironmentGrant, Membership, Organization, User
from testgate.web import session as console
from testgate.web.auth import safe_next

CALLBACK = "/oauth/sso/callback"
PENDING_COOKIE = "testgate_sso"
PENDING_PATH = "/oauth/sso"
log = structlog.get_logger("testgate.oauth.sso")


def redirect_uri(settings: Settings) -> str:
    """The redirect URI registered at the provider for this server."""
    return settings.base_url + CALLBACK


def _not_configured() -> Response:
    return pages.error_page(404, "not_found", "single sign-on is not configured on this server", title="Not found")


async def start(request: Request) -> Response:
    """``GET /oauth/sso/start``: remember the sign-in in a cookie and send the browser to the provider."""
    platform = platform_of(request)
    upstream = platform.settings.oauth.upstream
    if upstream is None:
        return _not_configured()
    query = request.query_params.get("request", "")
    if len(query) > sso.MAX_REQUEST:
        return pages.error_page(400, "invalid_request", "the authorization request is too long for single sign-on")
    target = "" if query else safe_next(request.query_params.get("next", "/ui"))
    try:
        provider = await sso.discover(upstream, fetcher_of(request).outbound)
    except SsoRefused as exc:
        log.warning("sso discovery failed", issuer=upstream.issuer, reason=exc.reason)
        return pages.error_page(502, "temporarily_unavailable", exc.reason, title="Sign-in failed")
    pending = Pending.start(request=query, next=target)
    location = sso.authorization_url(provider, upstream, redirect_uri(platform.settings), pending)
    response = RedirectResponse(location, status_code=302, headers=pages.BASE_HEADERS)
    key = await browser.mac_key(platform.db)
    response.set_cookie(
        PENDING_COOKIE,
        sso.seal(key, pending),
        max_age=sso.PENDING_TTL,
        path=PENDING_PATH,
        secure=browser.secure(request),
        httponly=True,
        samesite="lax",  # it must ride the provider's top-level redirect back
    )
    return response


async def callback(request: Request) -> Response:
    """``GET /oauth/sso/callback``: check the answer, find or provision the person, and sign them in."""
    platform = platform_of(request)
    settings = platform.settings
    upstream = settings.oauth.upstream
    if upstream is None:
        return _not_configured()
    key = await browser.mac_key(platform.db)
    pending = sso.unseal(key, request.cookies.get(PENDING_COOKIE))
    try:
        pending, person = await _authenticate(request, settings, upstream, pending)
        user, provisioned = await _account(platform, upstream, person)
    except SsoRefused as exc:
        await _audit(request, None, exc.email, reason=exc.reason)
        response: Response = pages.error_page(403, "access_denied", exc.reason, title="Sign-in failed")
        _forget(response, request)
        return response
    if provisioned is not None:
        await _audit_provisioned(request, user, provisioned)
    await _audit(request, user, user.email, subject=person.subject)
    ttl = settings.oauth.session_ttl
    if pending.request:
        response = RedirectResponse(f"{AUTHORIZE}?{pending.request}", status_code=303)
    else:
        response = RedirectResponse(pending.next or "/ui", status_code=303)
        console.start(response, request, key, user.id, ttl)
    browser.set_session(response, request, browser.seal(key, user.id, ttl), ttl)
    _forget(response, request)
    return response


def _forget(response: Response, request: Request) -> None:
    """The pending sign-in is single-use: its cookie goes whatever the outcome."""
    response.delete_cookie(
        PENDING_COOKIE, path=PENDING_PATH, secure=browser.secure(request), httponly=True, samesite="lax"
    )


async def _authenticate(
    request: Request, settings: Settings, upstream: UpstreamSettings, pending: Pending | None
) -> tuple[Pending, Identity]:
    """The verified person behind the provider's answer; ``SsoRefused`` at the first failed check."""
    params = request.query_params
    if pending is None:
        raise SsoRefused("this sign-in did not start in this browser or took over ten minutes; start again")
    if not hmac.compare_digest(params.get("state", ""), pending.state):
        raise SsoRefused("the answer's state is not this browser's sign-in (RFC 6749 §10.12); start again")
    if "iss" in params and params["iss"] != upstream.issuer:
        raise SsoRefused("the answer came from another issuer (RFC 9207 §2.4)")
    if "error" in params:
        raise SsoRefused(f"the identity provider answered {params['error'][:60]!r}")
    code = params.get("code")
    if not code:
        raise SsoRefused("the identity provider's answer carries no code")
    outbound = fetcher_of(request).outbound
    provider = await sso.discover(upstream, outbound)
    token = await sso.redeem(provider, upstream, outbound, code, redirect_uri(settings), pending.verifier)
    keys = await sso.signing_keys(provider, upstream, outbound)
    leeway = settings.oauth.clock_leeway
    claims = sso.verify_id_token(token, keys, provider, upstream.client_id, pending.nonce, leeway=leeway)
    return pending, sso.identity(claims, upstream)


@dataclass(frozen=True)
class Provisioned:
    """A person added to the organization at their first sign-in."""

    organization_id: str
    role: str
    grants: dict[str, str]
    new_account: bool


async def _account(platform: Platform, upstream: UpstreamSettings, person: Identity) -> tuple[User, Provisioned | None]:
    """The member with the verified email, provisioned into the default organization if need be."""
    try:
        address = users.normalize_email(person.email)
    except InvalidInput:
        raise SsoRefused("the identity provider's email address is not valid", person.email) from None
    try:
        async with platform.db.session() as db:
            org = await tenancy.organization_by_slug(db, platform.settings.default_organization)
            user = await db.scalar(select(User).where(User.email == address))
            if user is not None and user.disabled:
                raise SsoRefused("this account is disabled", address)
            if user is not None and await _is_member(db, org, user):
                return user, None
            if not upstream.provision:
                raise SsoRefused("there is no account for this email address here; ask an admin to add you", address)
            new_account = user is None
            if user is None:
                user = await users.create_user(db, email=address, name=_name(person), password=None)
            db.add(Membership(organization_id=org.id, user_id=user.id, role=upstream.default_role))
            grants = await _grant(db, org, user, upstream.default_grants)
        return user, Provisioned(org.id, upstream.default_role, grants, new_account)
    except IntegrityError:
        raise SsoRefused("this account was being created by another sign-in; sign in again", address) from None


async def _is_member(db: AsyncSession, org: Organization, user: User) -> bool:
    found = await db.scalar(
        select(Membership.id).where(Membership.organization_id == org.id, Membership.user_id == user.id)
    )
    return found is not None


async def _grant(db: AsyncSession, org: Organization, user: User, grants: Mapping[str, str]) -> dict[str, str]:
    """Give ``user`` the default grants; environments that don't exist are skipped with a warning."""
    given: dict[str, str] = {}
    for slug, permission in grants.items():
        try:
            env = await tenancy.environment_by_slug(db, org, slug)
        except NotFound:
            log.warning("sso default grant names a missing environment", environment=slug)
            continue
        db.add(EnvironmentGrant(environment_id=env.id, user_id=user.id, permission=permission))
        given[slug] = permission
    await db.flush()
    return given


def _name(person: Identity) -> str:
    name = " ".join(person.name.split())[:200]
    return name or person.email.partition("@")[0][:200]


async def _audit(request: Request, user: User | None, email: str, *, reason: str = "", subject: str = "") -> None:
    upstream = platform_of(request).settings.oauth.upstream
    event = events.AuthEvent(
        "auth.sso_login", "denied" if reason else "allowed", None, "user", user.id if user else None, email[:320]
    )
    event.reason = reason
    event.arguments = {"issuer": upstream.issuer if upstream else "", **({"subject": subject} if subject else {})}
    if user is not None:
        event.resources = [{"type": "user", "id": user.id}]
    await events.record(platform_of(request), request, event, transport="web")


async def _audit_provisioned(request: Request, user: User, provisioned: Provisioned) -> None:
    event = events.AuthEvent("member.provisioned", "allowed", provisioned.organization_id, "user", user.id, user.email)
    event.resources = [{"type": "user", "id": user.id, "name": user.email}]
    event.arguments = {
        "via": "sso",
        "role": provisioned.role,
        "grants": provisioned.grants,
        "new_account": provisioned.new_account,
    }
    await events.record(platform_of(request), request, event, transport="web")
