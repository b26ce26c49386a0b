"""The invitation page: ``GET /invite?token=...`` shows a form, ``POST /invite`` sets the invited person's password.

``testgate member invite`` gives a new account no password but a one-time link, valid seven days (REST and
MCP callers add only people who already have an account: ``operations.members``).
The form works like the first-owner setup page (``api.setup``): only with the link's secret, plus an
anti-CSRF value bound to it; the page loads nothing, can't be framed, and its URL is never sent on as a
Referer. Setting the password redeems the link exactly once and is audited (``auth.invite_accepted``) in
every organization the person belongs to, in the same transaction.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from testgate.access import users
from testgate.api.context import platform_of
from testgate.api.setup import MAX_TOKEN, csrf_ok, form_error, form_fields, form_page, message, page, user_event
from testgate.audit import recorder
from testgate.errors import InvalidInput, TestgateError
from testgate.store.tenancy import Membership, User

CSRF_COOKIE = "testgate_invite_csrf"
TEMPLATE = "invite.html"
TITLE = "Accept your invitation"
EXPIRED = "This form has expired or did not come from the invitation link. Open the link again."

router = APIRouter(include_in_schema=False)


@router.get("/invite", response_class=HTMLResponse)
async def invite_form(request: Request, token: str = "") -> HTMLResponse:
    """The form, if ``token`` is an unused, unexpired invitation."""
    try:
        async with platform_of(request).db.session(write=False) as session:
            user = await users.invited_user(session, token[:MAX_TOKEN])
    except TestgateError as exc:
        return page(TEMPLATE, 400, title=TITLE, error=message(exc))
    return form_page(request, TEMPLATE, CSRF_COOKIE, "/invite", token, title=TITLE, email=user.email)


@router.post("/invite", response_class=HTMLResponse)
async def invite_submit(request: Request) -> HTMLResponse:
    """Set the password from the form, once."""
    fields = await form_fields(request)
    token = fields.get("token", "")[:MAX_TOKEN]
    if not csrf_ok(request.cookies.get(CSRF_COOKIE), token, fields.get("csrf", "")):
        return page(TEMPLATE, 400, title=TITLE, error=EXPIRED)
    again = {"form": True, "token": token, "csrf": fields["csrf"], "email": fields.get("email", "")}
    problem = form_error(fields)
    if problem:
        return page(TEMPLATE, 400, title=TITLE, error=problem, **again)
    try:
        user = await _accept(request, token, fields["password"])
    except InvalidInput as exc:
        return page(TEMPLATE, 400, title=TITLE, error=message(exc), **again)
    except TestgateError as exc:
        return page(TEMPLATE, 400, title=TITLE, error=message(exc))
    response = page(TEMPLATE, 200, title=TITLE, done=True, email=user.email)
    response.delete_cookie(CSRF_COOKIE, path="/invite")
    return response


async def _accept(request: Request, token: str, password: str) -> User:
    """Redeem the invitation and audit it, in one transaction (all or nothing)."""
    async with platform_of(request).db.session() as session:
        user = await users.redeem_invite(session, token, password=password)
        organizations = await session.scalars(select(Membership.organization_id).where(Membership.user_id == user.id))
        for organization_id in sorted(organizations):
            await recorder.record(session, user_event(request, organization_id, user, "auth.invite_accepted"))
    return user
