"""The browser side of the authorization endpoint: sign in, consent, and revoking a consent.

    GET  /oauth/authorize                   validate; sign-in page, consent page, or straight back with a code
    POST /oauth/login                       sign in (backoff per account and source), then resume the request
    POST /oauth/authorize                   the consent decision (the request is validated again in full)
    POST /oauth/consents/{id}/revoke        the signed-in person revokes one of their consents

Every POST needs the CSRF value of its form. The authorization request travels through the forms as its
original query string and is re-validated from scratch each time, so a form field can't widen it.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from testgate.access.principal import Permission
from testgate.errors import NotFound
from testgate.oauth import authorize, browser, consent, events, pages
from testgate.oauth.authorize import Redirected, Untrusted
from testgate.oauth.authorize import Request as AuthorizationRequest
from testgate.oauth.context import fetcher_of, platform_of
from testgate.oauth.login import LoginFailed, login_user
from testgate.store.oauth import Consent
from testgate.store.tenancy import Environment, User

EXPIRED = "this form has expired or did not come from this server; start again from the application"


async def _fields(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    async with request.form(max_files=0, max_fields=10, max_part_size=16384) as form:
        return _strings(form)


def _strings(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _key(request: Request) -> bytes:
    return await browser.mac_key(platform_of(request).db)


async def current_user(request: Request, key: bytes) -> User | None:
    """The person signed in to these pages, if the cookie is valid, the account enabled and not signed out since."""
    session = browser.unseal(key, request.cookies.get(browser.SESSION_COOKIE))
    if session is None:
        return None
    async with platform_of(request).db.session() as db:
        return browser.valid_for(session, await db.get(User, session.user_id))


async def _parse(request: Request, query: str) -> AuthorizationRequest | Response:
    platform = platform_of(request)
    try:
        return await authorize.parse(platform.db, fetcher_of(request), platform.settings, query)
    except Untrusted as exc:
        return pages.error_page(400, exc.error, exc.description)
    except Redirected as exc:
        return RedirectResponse(exc.location, status_code=303 if request.method == "POST" else 302)


async def _held(request: Request, auth: AuthorizationRequest, user: User) -> Permission:
    async with platform_of(request).db.session() as session:
        return await authorize.held_permission(session, user.id, auth.organization.id, auth.environment.id)


def _early(request: Request, auth: AuthorizationRequest, error: str, description: str) -> Response:
    """An error before the person did anything: redirected, or shown here for a web redirect URI."""
    settings = platform_of(request).settings
    refused = authorize.early(settings, auth.redirect_uri, auth.state, error, description)
    if isinstance(refused, Untrusted):
        return pages.error_page(400, refused.error, refused.description)
    return _back(request, refused.location)


def _back(request: Request, location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303 if request.method == "POST" else 302)


async def _code(request: Request, auth: AuthorizationRequest, user: User, *, remember: bool) -> RedirectResponse:
    """Issue the code (remembering the consent when asked) and send the browser back to the client."""
    platform = platform_of(request)
    async with platform.db.session() as session:
        if remember:
            await consent.grant(session, user.id, auth.client.id, auth.environment.id, auth.scopes)
        code = await authorize.issue_code(session, platform.settings, auth, user.id)
    return _back(request, authorize.success(auth, platform.settings, code))


async def _decide(request: Request, key: bytes, auth: AuthorizationRequest, user: User) -> Response:
    """Code at once when a remembered consent covers the request; else the consent page (or an error)."""
    settings = platform_of(request).settings
    held = await _held(request, auth, user)
    if held == Permission.NONE:
        return _back(request, authorize.refusal(auth, settings, "access_denied", "you have no access there"))
    if "consent" not in auth.prompt:
        async with platform_of(request).db.session() as session:
            remembered = await consent.covers(session, user.id, auth.client.id, auth.environment.id, auth.scopes)
        if remembered:
            return await _code(request, auth, user, remember=False)
    if "none" in auth.prompt:
        return _early(request, auth, "consent_required", "consent is needed")
    return pages.consent_page(request, key, auth, user, held, settings.oauth.access_token_ttl)


async def authorize_get(request: Request) -> Response:
    """``GET /oauth/authorize`` (RFC 6749 §4.1.1)."""
    auth = await _parse(request, request.url.query)
    if isinstance(auth, Response):
        return auth
    key = await _key(request)
    user = await current_user(request, key)
    if user is None:
        if "none" in auth.prompt:
            return _early(request, auth, "login_required", "sign-in is needed")
        return pages.login_page(request, key, auth)
    return await _decide(request, key, auth, user)


async def login_post(request: Request) -> Response:
    """``POST /oauth/login``: check the password, start a session, and resume the authorization request."""
    fields = await _fields(request)
    key = await _key(request)
    if not browser.csrf_ok(key, request, "login", fields.get("csrf", "")):
        return pages.error_page(400, "invalid_request", EXPIRED)
    auth = await _parse(request, fields.get("request", ""))
    if isinstance(auth, Response):
        return auth
    platform = platform_of(request)
    source = request.client.host if request.client else None
    email = fields.get("email", "")
    async with platform.db.sessions() as session:
        try:
            user: User | LoginFailed = await login_user(
                session, email, fields.get("password", ""), source, policy=platform.settings.oauth
            )
        except LoginFailed as exc:
            user = exc
        await session.commit()
    await _audit_login(request, auth, email, user)
    if isinstance(user, LoginFailed):
        message = user.message[:1].upper() + user.message[1:] + "."
        return pages.login_page(request, key, auth, status=401, error=message, email=email[:320])
    response = RedirectResponse(f"authorize?{auth.query}", status_code=303)
    ttl = platform.settings.oauth.session_ttl
    browser.set_session(response, request, browser.seal(key, user.id, ttl), ttl)
    return response


async def _audit_login(request: Request, auth: AuthorizationRequest, email: str, user: User | LoginFailed) -> None:
    ok = isinstance(user, User)
    event = events.AuthEvent(
        "oauth.login",
        "allowed" if ok else "denied",
        None,  # a person's event: it goes to their own organizations, not the one the request names
        "user",
        user.id if isinstance(user, User) else None,
        email.strip().lower()[:320],
        reason="" if isinstance(user, User) else user.message,
    )
    event.resources = [events.client_resource(auth.client.client_id, pages.client_name(auth))]
    await events.record(platform_of(request), request, event, transport="web")


async def consent_post(request: Request) -> Response:
    """``POST /oauth/authorize``: allow or deny, by the signed-in person, with the consent form's CSRF value."""
    fields = await _fields(request)
    key = await _key(request)
    user = await current_user(request, key)
    query = fields.get("request", "")
    if user is None:
        return RedirectResponse(f"authorize?{query}", status_code=303)
    if not browser.csrf_ok(key, request, pages.consent_purpose(user.id), fields.get("csrf", "")):
        return pages.error_page(400, "invalid_request", EXPIRED)
    auth = await _parse(request, query)
    if isinstance(auth, Response):
        return auth
    settings = platform_of(request).settings
    if await _held(request, auth, user) == Permission.NONE:
        return _back(request, authorize.refusal(auth, settings, "access_denied", "you have no access there"))
    allowed = fields.get("decision") == "allow"
    action = "oauth.consent_granted" if allowed else "oauth.consent_denied"
    event = events.AuthEvent(action, "allowed" if allowed else "denied", auth.organization.id, "user", user.id)
    event.actor_name, event.environment_id = user.email, auth.environment.id
    event.resources = [events.client_resource(auth.client.client_id, pages.client_name(auth))]
    event.arguments = {"scope": auth.scope, "resource": auth.resource}
    await events.record(platform_of(request), request, event, transport="web")
    if not allowed:
        return _back(request, authorize.refusal(auth, settings, "access_denied", "the person declined"))
    return await _code(request, auth, user, remember=True)


async def consent_revoke_post(request: Request) -> HTMLResponse:
    """``POST /oauth/consents/{id}/revoke``: the signed-in person revokes a consent (and its tokens)."""
    fields = await _fields(request)
    key = await _key(request)
    user = await current_user(request, key)
    if user is None:
        return pages.message_page("Sign-in needed", "Sign in again to manage your consents.", 401)
    if not browser.csrf_ok(key, request, pages.revoke_purpose(user.id), fields.get("csrf", "")):
        return pages.error_page(400, "invalid_request", EXPIRED)
    platform = platform_of(request)
    try:
        async with platform.db.session() as session:
            row: Consent = await consent.revoke(session, str(request.path_params["consent_id"]), user.id)
            env = await session.get(Environment, row.environment_id)
    except NotFound:
        return pages.message_page("Not found", "There is no such consent.", 404)
    event = events.AuthEvent(
        "oauth.consent_revoked", "allowed", env.organization_id if env else None, "user", user.id, user.email
    )
    event.environment_id = row.environment_id
    event.resources = [{"type": "oauth_consent", "id": row.id}]
    await events.record(platform, request, event, transport="web")
    return pages.message_page("Consent revoked", "The application's access and refresh tokens no longer work.")
