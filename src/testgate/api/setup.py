"""The first-owner setup page: ``GET /setup?token=...`` shows a form, ``POST /setup`` creates the owner once.

The form is valid only with the one-time token from the link, plus an anti-CSRF value bound to that token:
a double-submit cookie holds a random nonce and the form holds HMAC-SHA256(nonce, token), so a form posted
from elsewhere carries neither. The page loads nothing and can't be framed (CSP, X-Frame-Options), and the
token in its URL is never sent on as a Referer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access import users
from testgate.api.context import platform_of
from testgate.audit import recorder
from testgate.errors import InvalidInput, TestgateError
from testgate.http.origin import origin_of
from testgate.platform import tenancy
from testgate.store.tenancy import Organization, User

CSRF_COOKIE = "testgate_setup_csrf"
MAX_TOKEN = 200
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
EXPIRED = "This form has expired or did not come from the setup link. Open the setup link again."
TITLE = "Create the first owner"

_templates = Environment(loader=PackageLoader("testgate", "web/templates"), autoescape=select_autoescape(["html"]))
router = APIRouter(include_in_schema=False)


def csrf_value(nonce: str, token: str) -> str:
    """The form's anti-CSRF value: the cookie's nonce bound to the setup token."""
    return hmac.new(nonce.encode(), token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(nonce: str | None, token: str, submitted: str) -> bool:
    """The submitted value matches the cookie's nonce and this token (constant-time)."""
    return bool(nonce) and hmac.compare_digest(csrf_value(nonce or "", token), submitted)


def page(template: str, status: int, **context: Any) -> HTMLResponse:
    """A one-time-link page (this one, the invitation's): no scripts, no framing, no Referer."""
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _page(status: int, **context: Any) -> HTMLResponse:
    return page("setup.html", status, title=TITLE, **context)


def message(exc: TestgateError) -> str:
    """A domain error as a sentence for the page."""
    if isinstance(exc, InvalidInput) and exc.errors:
        return "; ".join(f"{e.path}: {e.message}" for e in exc.errors).capitalize() + "."
    return exc.message[:1].upper() + exc.message[1:] + "."


async def _organization(request: Request, session: AsyncSession) -> Organization:
    return await tenancy.organization_by_slug(session, platform_of(request).settings.default_organization)


@router.get("/setup", response_class=HTMLResponse)
async def setup_form(request: Request, token: str = "") -> HTMLResponse:
    """The form, if ``token`` is this organization's unused setup token."""
    try:
        async with platform_of(request).db.session() as session:
            org = await _organization(request, session)
            await users.check_setup_token(session, org, token[:MAX_TOKEN])
    except TestgateError as exc:
        return _page(400, error=message(exc))
    return form_page(request, "setup.html", CSRF_COOKIE, "/setup", token, title=TITLE, org=org.name, name="", email="")


def form_page(request: Request, template: str, cookie: str, path: str, token: str, **context: Any) -> HTMLResponse:
    """A one-time link's form: its anti-CSRF value bound to ``token``, the nonce in a strict cookie on ``path``."""
    nonce = secrets.token_urlsafe(32)
    response = page(template, 200, form=True, token=token, csrf=csrf_value(nonce, token), **context)
    secure = request.url.scheme == "https"
    response.set_cookie(cookie, nonce, max_age=3600, path=path, secure=secure, httponly=True, samesite="strict")
    return response


async def form_fields(request: Request) -> dict[str, str]:
    """The posted form's text fields (bounded: a handful of short fields, no files)."""
    async with request.form(max_files=0, max_fields=10, max_part_size=4096) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


def form_error(fields: dict[str, str]) -> str | None:
    """Why the password fields are not acceptable, or None."""
    if fields.get("password", "") != fields.get("password_again", ""):
        return "The two passwords do not match."
    try:
        users.check_password(fields.get("password", ""))
    except InvalidInput as exc:
        return message(exc)
    return None


@router.post("/setup", response_class=HTMLResponse)
async def setup_submit(request: Request) -> HTMLResponse:
    """Create the owner from the form, once."""
    fields = await form_fields(request)
    token = fields.get("token", "")[:MAX_TOKEN]
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), token, fields.get("csrf", "")):
        return _page(400, error=EXPIRED)
    again = {"form": True, "token": token, "csrf": fields["csrf"], "name": fields.get("name", "")}
    again["email"] = fields.get("email", "")
    problem = form_error(fields)
    if problem:
        return _page(400, error=problem, **again)
    try:
        user, org = await _create(request, token, fields)
    except InvalidInput as exc:
        return _page(400, error=message(exc), **again)
    except TestgateError as exc:
        return _page(400, error=message(exc))
    response = _page(200, done=True, org=org.name, email=user.email)
    response.delete_cookie(CSRF_COOKIE, path="/setup")
    return response


async def _create(request: Request, token: str, fields: dict[str, str]) -> tuple[User, Organization]:
    """Redeem the token, create the owner and audit it, in one transaction (all or nothing)."""
    async with platform_of(request).db.session() as session:
        org = await _organization(request, session)
        await users.redeem_setup_token(session, org, token)
        user = await users.create_owner(
            session, org, email=fields.get("email", ""), name=fields.get("name", ""), password=fields["password"]
        )
        arguments = {"email": user.email, "name": user.name}
        await recorder.record(session, user_event(request, org.id, user, "setup.owner_created", arguments))
    return user, org


def user_event(
    request: Request, organization_id: str, user: User, action: str, arguments: dict[str, Any] | None = None
) -> recorder.Event:
    """The audit event of a one-time-link page: ``user`` acted on their own account, over the web."""
    return recorder.Event(
        organization_id=organization_id,
        action=action,
        outcome="allowed",
        transport="web",
        actor_type="user",
        actor_id=user.id,
        actor_name=user.email,
        resources=[{"type": "user", "id": user.id, "name": user.email}],
        arguments=arguments or {},
        **origin_of(request.scope),
    )
