"""What every console handler gets: the signed-in person in the URL's organization and environment.

``Console.run`` is the only way a page reads or changes anything: it dispatches with transport ``web``,
so the page is authorized and audited like any other entry point. A destructive operation confirms with
the value only its confirmation page hands out (``Console.confirmer``); posted without it, ``unconfirmed``
refuses in words for a person at a browser (dispatch's own refusal is written for MCP clients).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from testgate.access.principal import Permission, Principal
from testgate.errors import ConfirmationRequired, NotFound, PermissionDenied, Unauthenticated
from testgate.http.origin import origin_of
from testgate.oauth import browser as oauth_browser
from testgate.oauth.browser import BrowserSession
from testgate.operations.context import Call, Confirmer, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.platform import links
from testgate.platform.context import Platform
from testgate.store.tenancy import User
from testgate.web import once, pages, session
from testgate.web.principal import EnvironmentChoice, Identity, console_identity

M = TypeVar("M", bound=BaseModel)

MAX_FIELDS = 200
EXPIRED = "This form has expired or did not come from this console. Go back, reload the page and try again."

Org = Annotated[str, Path(max_length=63)]
Env = Annotated[str, Path(max_length=63)]


class FormExpired(PermissionDenied):
    """A form without this session's CSRF value (or a destructive one without its confirmation value)."""


def platform_of(request: Request) -> Platform:
    return cast(Platform, request.app.state.platform)


async def signed_in(request: Request) -> tuple[bytes, BrowserSession, User]:
    """The key, session and user of the browser; ``Unauthenticated`` when it is not signed in."""
    platform = platform_of(request)
    key = await session.mac_key(platform)
    browser = session.current(key, request)
    if browser is None:
        raise Unauthenticated("sign in to use the console")
    async with platform.db.session(write=False) as db:
        user = oauth_browser.valid_for(browser, await db.get(User, browser.user_id))
    if user is None:
        raise Unauthenticated("this sign-in is over (signed out, or the account is no longer active)")
    return key, browser, user


@dataclass
class Console:
    """One console request: who, in which organization and environment, with which CSRF value."""

    request: Request
    platform: Platform
    key: bytes
    browser: BrowserSession
    identity: Identity
    env: EnvironmentChoice
    nonce: str
    new_nonce: bool

    @property
    def principal(self) -> Principal:
        return self.identity.principal

    @property
    def org(self) -> str:
        return self.identity.organization.slug

    @property
    def csrf(self) -> str:
        """The value every form of this sign-in carries."""
        return self.token(session.purpose(self.browser))

    def token(self, purpose: str) -> str:
        return session.CONSOLE.token(self.key, self.nonce, purpose)

    def confirmation(self, action: str, subject: str) -> str:
        """The value only the confirmation page of ``action`` on ``subject`` hands out."""
        return self.token(session.confirmation_purpose(self.browser, action, subject))

    def once(self, action: str, subject: str = "") -> str:
        """A fresh single-use value for a form of ``action`` on ``subject`` (``web.once``)."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self.token(session.once_purpose(self.browser, action, subject, nonce))}"

    @asynccontextmanager
    async def first_submission(self, fields: Mapping[str, str], action: str, subject: str = "") -> AsyncIterator[bool]:
        """Spend the form's single-use value: whether this is its first submission (``FormExpired`` if absent)."""
        nonce, _, value = fields.get("once", "").partition(".")
        purpose = session.once_purpose(self.browser, action, subject, nonce)
        if not nonce or not session.CONSOLE.ok(self.key, self.request, purpose, value):
            raise FormExpired(EXPIRED)
        ledger = cast(once.Ledger, self.request.app.state.console_forms)
        async with once.spending(ledger, nonce, self.platform.settings.oauth.session_ttl) as first:
            yield first

    def can(self, permission: Permission) -> bool:
        """Whether to show a control needing ``permission`` (the server checks again when it is used)."""
        return self.env.permission >= permission

    @property
    def is_admin(self) -> bool:
        return self.principal.is_org_admin

    def url(self, kind: links.LinkKind, ref: str | None = None, env: str | None = None) -> str:
        """A path into the console: exactly the links ``build_dashboard_url`` hands out."""
        return links.console_url("", self.org, env or self.env.slug, kind, ref)

    @property
    def base(self) -> str:
        return self.url("workflows").removesuffix("/workflows")

    def call(self, *, scope: str = "environment", confirm: Confirmer | None = None) -> Call:
        return Call(
            principal=self.principal,
            organization=self.org,
            environment=self.env.slug if scope == "environment" else None,
            transport="web",
            confirm=confirm or unconfirmed,
            **origin_of(self.request.scope),
        )

    async def run(
        self,
        model: type[M],
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        scope: str = "environment",
        confirm: Confirmer | None = None,
    ) -> M:
        """Dispatch operation ``name`` as this person over the web transport."""
        output = await dispatch(self.platform, self.call(scope=scope, confirm=confirm), name, args or {})
        if not isinstance(output, model):
            raise TypeError(f"{name} returned {type(output).__name__}, not {model.__name__}")
        return output

    async def form(self) -> dict[str, str]:
        """The posted fields, once the CSRF value is checked (``FormExpired`` otherwise)."""
        fields = await read_form(self.request)
        if not session.CONSOLE.ok(self.key, self.request, session.purpose(self.browser), fields.get("csrf", "")):
            raise FormExpired(EXPIRED)
        return fields

    def confirmer(self, fields: Mapping[str, str], action: str, subject: str) -> Confirmer | None:
        """``accepted`` when the form came from the confirmation page; else none, and ``unconfirmed`` refuses."""
        purpose = session.confirmation_purpose(self.browser, action, subject)
        if not session.CONSOLE.ok(self.key, self.request, purpose, fields.get("confirm", "")):
            return None

        async def confirmed(message: str) -> ConfirmOutcome:
            return "accepted"  # the person read the question on the confirmation page and pressed its button

        return confirmed

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """A page of this console (navigation, environment switcher, CSRF value)."""
        response = pages.render(template, status, c=self, **context)
        if self.new_nonce:
            session.CONSOLE.remember(response, self.request, self.nonce)
        return response


@dataclass(frozen=True)
class Visitor:
    """The signed-in person on a page of no environment (an error page): the sign-out form's email and CSRF value."""

    email: str
    csrf: str


async def page_outside(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page outside any environment; a signed-in person keeps the sign-out control (and its CSRF value)."""
    try:
        key, browser, user = await signed_in(request)
    except Unauthenticated:
        return pages.render(template, status, c=None, **context)
    nonce, new = session.CONSOLE.nonce(request)
    visitor = Visitor(user.email, session.CONSOLE.token(key, nonce, session.purpose(browser)))
    response = pages.render(template, status, c=None, visitor=visitor, **context)
    if new:
        session.CONSOLE.remember(response, request, nonce)
    return response


async def unconfirmed(message: str) -> ConfirmOutcome:
    """A destructive action posted without its confirmation page's value: tell the person where to confirm."""
    raise ConfirmationRequired(
        "nothing was changed: this needs your confirmation, and the form did not come from its confirmation "
        f"page. Go back, open the action again and confirm it on the page that asks. It would: {message}"
    )


async def read_form(request: Request) -> dict[str, str]:
    """The text fields of a url-encoded form (bounded; files refused)."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=64 * 1024) as form:
        return {k: v for k, v in form.items() if isinstance(v, str)}


async def console_of(request: Request, org: Org, env: Env) -> Console:
    """The console of a signed-in person in ``org``/``env``; ``NotFound`` for what they cannot see."""
    key, browser, user = await signed_in(request)
    platform = platform_of(request)
    async with platform.db.session(write=False) as db:
        identity = await console_identity(db, user, org)
    choice = identity.environment(env)
    if choice is None:
        raise NotFound(f"environment {env!r} not found in organization {org!r}")
    nonce, new = session.CONSOLE.nonce(request)
    return Console(request, platform, key, browser, identity, choice, nonce, new)
