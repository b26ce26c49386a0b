"""Signing in to and out of the console, and finding where to start.

GET  /login        the sign-in form (password; an SSO button when an upstream provider is configured)
POST /login        check the password (``login_user``: backoff per account and address), start a session;
                   over the sign-in rate limit the front door answers ``rate_limited``: this form, 429
POST /ui/logout    end the session
GET  /ui           the first environment the person can see
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope

from testgate.errors import NotFound, Unauthenticated
from testgate.oauth import browser as oauth_browser
from testgate.oauth import events
from testgate.oauth.login import LoginFailed, login_user
from testgate.store.tenancy import User
from testgate.web import pages, session
from testgate.web.context import EXPIRED, FormExpired, platform_of, read_form, signed_in
from testgate.web.principal import console_identity
from testgate.web.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)
SSO_START = "/oauth/sso/start"  # testgate.oauth.sso_routes.START; that module imports this one, so no import back
Next = Annotated[str, Query(max_length=2000)]


def safe_next(target: str) -> str:
    """Where to go after signing in: a console path on this server, never another site."""
    parts = urlsplit(target)
    inside = target == "/ui" or target.startswith("/ui/")
    if parts.scheme or parts.netloc or not inside or "\\" in target or any(ord(ch) < 32 for ch in target):
        return "/ui"
    return target


def sso_option(request: Request, target: str) -> dict[str, str] | None:
    """The single-sign-on button, when an upstream OpenID Connect provider is configured."""
    upstream = platform_of(request).settings.oauth.upstream
    if upstream is None:
        return None
    return {"name": upstream.name, "url": f"{SSO_START}?{urlencode({'next': target})}"}


def login_page(
    request: Request, key: bytes, *, status: int = 200, error: str = "", email: str = "", target: str = "/ui"
) -> HTMLResponse:
    """The sign-in form, with its CSRF value (and nonce cookie, the first time)."""
    nonce, new = session.LOGIN.nonce(request)
    response = pages.render(
        "login.html",
        status,
        c=None,
        title="Sign in",
        error=error,
        email=email,
        next=target,
        sso=sso_option(request, target),
        csrf=session.LOGIN.token(key, nonce, session.LOGIN_PURPOSE),
    )
    if new:
        session.LOGIN.remember(response, request, nonce)
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: Next = "/ui") -> HTMLResponse:
    """The sign-in form."""
    key = await session.mac_key(platform_of(request))
    return login_page(request, key, target=safe_next(next))


async def _audit(request: Request, action: str, user: User | None, email: str, reason: str = "") -> None:
    event = events.AuthEvent(
        action, "denied" if reason else "allowed", None, "user", user.id if user else None, email, reason=reason
    )
    await events.record(platform_of(request), request, event, transport="web")


async def rate_limited(scope: Scope, receive: Receive, retry_after: int) -> Response:
    """The sign-in page for a browser whose address used up its sign-in attempts (the rate limit's 429)."""
    request = Request(scope, receive)
    key = await session.mac_key(platform_of(request))
    unit = "second" if retry_after == 1 else "seconds"
    error = f"Too many sign-in attempts from your address. Try again in {retry_after} {unit}."
    return login_page(request, key, status=429, error=error)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the password and start a console session; the same refusal whatever was wrong."""
    fields = await read_form(request)
    platform = platform_of(request)
    key = await session.mac_key(platform)
    target = safe_next(fields.get("next", "/ui"))
    if not session.LOGIN.ok(key, request, session.LOGIN_PURPOSE, fields.get("csrf", "")):
        raise FormExpired(EXPIRED)
    email = fields.get("email", "")[:320]
    source = request.client.host if request.client else None
    async with platform.db.sessions() as db:
        try:
            user: User | LoginFailed = await login_user(
                db, email, fields.get("password", ""), source, policy=platform.settings.oauth
            )
        except LoginFailed as exc:
            user = exc
        await db.commit()  # a failure counts towards the backoff: that is the point
    address = email.strip().lower()
    if isinstance(user, LoginFailed):
        await _audit(request, "console.login", None, address, reason=user.message)
        page = login_page(request, key, status=401, error=pages.sentence(user.message), email=email, target=target)
        if user.retry_after:
            page.headers["Retry-After"] = str(max(1, round(user.retry_after)))
        return page
    await _audit(request, "console.login", user, user.email)
    response = RedirectResponse(target, status_code=303)
    ttl = platform.settings.oauth.session_ttl
    session.start(response, request, key, user.id, ttl)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    """End the session (CSRF-checked, so another site can't sign the person out)."""
    response = RedirectResponse("/login", status_code=303)
    try:
        key, browser, user = await signed_in(request)
    except Unauthenticated:
        session.end(response, request)
        return response
    fields = await read_form(request)
    if not session.CONSOLE.ok(key, request, session.purpose(browser), fields.get("csrf", "")):
        raise FormExpired(EXPIRED)
    await oauth_browser.sign_out(platform_of(request).db, user.id)
    await _audit(request, "console.logout", user, user.email)
    session.end(response, request)
    return response


@router.get("/")
async def root() -> Response:
    """The server's address opened in a browser: the console (which asks to sign in first)."""
    return RedirectResponse("/ui", status_code=303)


@router.get("/ui")
async def home(request: Request) -> Response:
    """The workflows of the first environment the person can see in the default organization."""
    _, _, user = await signed_in(request)
    platform = platform_of(request)
    org = platform.settings.default_organization
    async with platform.db.session() as db:
        identity = await console_identity(db, user, org)
    if not identity.environments:
        raise NotFound(f"you have no environment in organization {org!r}; ask an admin for access")
    env = identity.environments[0].slug
    return RedirectResponse(f"/ui/{quote(org, safe='')}/{quote(env, safe='')}/workflows", status_code=303)


@router.get("/ui/{org}/{env}")
async def environment_home(org: str, env: str) -> Response:
    """An environment's start page: its workflows."""
    return RedirectResponse(f"/ui/{quote(org, safe='')}/{quote(env, safe='')}/workflows", status_code=303)
