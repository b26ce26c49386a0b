"""The console's browser state: a signed session cookie scoped to ``/ui``, and CSRF values bound to it.

A thin wrapper over ``testgate.oauth.browser`` (same MAC key, same sealed ``user . issued . expiry`` value),
with the console's own cookie names and paths:

    testgate_console_session   Path=/ui     HttpOnly, SameSite=Lax, Secure on https; lives oauth.session_ttl
    testgate_console_csrf      Path=/ui     HttpOnly, SameSite=Lax; a random nonce
    testgate_login_csrf        Path=/login  HttpOnly, SameSite=Lax; the sign-in form's nonce

Every console form carries HMAC(key, nonce | purpose) where the purpose names the sign-in (user and issue
time): a cross-site post carries neither the nonce nor a value derived from it (double submit, bound to the
session; OWASP CSRF cheat sheet). A destructive action additionally carries a confirmation value that only
the confirmation page hands out, bound to the session, the action and its subject; a form that makes a
secret carries a single-use value as well (``web.once``).

Signing out deletes the cookie and records the sign-out on the user (``oauth.browser.sign_out``): every
session issued before it, a copied cookie included, is refused from then on, here and on the
authorization server's pages.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import Request, Response

from testgate.oauth import browser
from testgate.oauth.browser import BrowserSession
from testgate.platform.context import Platform

SESSION_COOKIE = "testgate_console_session"
PATH = "/ui"
LOGIN_PATH = "/login"


async def mac_key(platform: Platform) -> bytes:
    """The MAC key shared with the authorization server's pages (and every replica)."""
    return await browser.mac_key(platform.db)


def current(key: bytes, request: Request) -> BrowserSession | None:
    """The sign-in this browser holds, if its cookie is genuine and unexpired."""
    return browser.unseal(key, request.cookies.get(SESSION_COOKIE))


def start(response: Response, request: Request, key: bytes, user_id: str, ttl: int) -> None:
    """Sign the browser in as ``user_id`` for ``ttl`` seconds."""
    response.set_cookie(
        SESSION_COOKIE,
        browser.seal(key, user_id, ttl),
        max_age=ttl,
        path=PATH,
        secure=browser.secure(request),
        httponly=True,
        samesite="lax",
    )


def end(response: Response, request: Request) -> None:
    """Delete the browser's session cookie (``oauth.browser.sign_out`` ends the session itself)."""
    response.delete_cookie(SESSION_COOKIE, path=PATH, secure=browser.secure(request), httponly=True, samesite="lax")


def purpose(session: BrowserSession) -> str:
    """What every form of one sign-in is bound to."""
    return f"console|{session.user_id}|{session.issued_ms}"


@dataclass(frozen=True)
class Csrf:
    """One double-submit nonce cookie, and the form values derived from it."""

    cookie: str
    path: str

    def nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's nonce, and whether it is new (and so must be set on the response)."""
        nonce = request.cookies.get(self.cookie)
        if nonce and 20 <= len(nonce) <= 100:
            return nonce, False
        return secrets.token_urlsafe(32), True

    def remember(self, response: Response, request: Request, nonce: str) -> None:
        response.set_cookie(
            self.cookie, nonce, path=self.path, secure=browser.secure(request), httponly=True, samesite="lax"
        )

    def token(self, key: bytes, nonce: str, purpose: str) -> str:
        """The value a form of ``purpose`` carries for this browser's nonce."""
        return browser.csrf_token(key, nonce, purpose)

    def ok(self, key: bytes, request: Request, purpose: str, submitted: str) -> bool:
        """The submitted value belongs to this browser's nonce and ``purpose`` (constant-time)."""
        nonce = request.cookies.get(self.cookie)
        expected = browser.csrf_token(key, nonce or "", purpose)
        return bool(nonce) and hmac.compare_digest(expected, submitted or "")


CONSOLE = Csrf("testgate_console_csrf", PATH)
LOGIN = Csrf("testgate_login_csrf", LOGIN_PATH)
LOGIN_PURPOSE = "console-login"


def confirmation_purpose(session: BrowserSession, action: str, subject: str) -> str:
    """The purpose of a destructive form: this sign-in, this action, this subject."""
    return f"confirm|{purpose(session)}|{action}|{subject}"


def once_purpose(session: BrowserSession, action: str, subject: str, nonce: str) -> str:
    """The purpose of a single-use form (``web.once``): this sign-in, this action and subject, this nonce."""
    return f"once|{purpose(session)}|{action}|{subject}|{nonce}"
