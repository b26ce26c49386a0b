"""The authorization server's browser state: a signed session cookie and anti-CSRF values.

The session cookie holds ``user id . issued-at (ms) . expiry (s)`` and an HMAC-SHA256 over them with a key
kept in the database (so every replica accepts it); it is HttpOnly, SameSite=Lax, Secure on https, and
scoped to ``/oauth``. Signing out records its time on the user, which ends every session issued before
it, copies of the cookie included (``valid_for``). Every form carries HMAC(key, nonce | purpose), where the
nonce lives in an HttpOnly SameSite=Strict cookie: a cross-site form post carries neither (double-submit,
OWASP CSRF cheat sheet).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass

from fastapi import Request, Response
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from testgate.store.base import utcnow
from testgate.store.db import Database
from testgate.store.oauth import ServerSecret
from testgate.store.tenancy import User

SESSION_COOKIE = "testgate_as_session"
CSRF_COOKIE = "testgate_as_csrf"
PATH = "/oauth"
_SECRET_NAME = "browser-mac"
_cached: weakref.WeakKeyDictionary[Database, bytes] = weakref.WeakKeyDictionary()


async def mac_key(db: Database) -> bytes:
    """The MAC key shared by replicas, created on first use."""
    cached = _cached.get(db)
    if cached is not None:
        return cached
    for _ in range(2):
        try:
            async with db.session() as session:
                row = await session.scalar(select(ServerSecret).where(ServerSecret.name == _SECRET_NAME))
                if row is None:
                    row = ServerSecret(name=_SECRET_NAME, value=secrets.token_urlsafe(48))
                    session.add(row)
                    await session.flush()
                key = row.value.encode()
            _cached[db] = key
            return key
        except IntegrityError:
            continue  # another replica created it first
    raise RuntimeError("the browser MAC key could not be created")


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class BrowserSession:
    """Who is signed in to the authorization pages, since when (milliseconds since the epoch)."""

    user_id: str
    issued_ms: int


def seal(key: bytes, user_id: str, ttl: int, now: float | None = None) -> str:
    """A session cookie value for ``user_id`` valid ``ttl`` seconds."""
    now = now if now is not None else time.time()
    body = f"{user_id}.{int(now * 1000)}.{int(now) + ttl}"
    return f"{body}.{_mac(key, 'session|' + body)}"


def unseal(key: bytes, value: str | None, now: float | None = None) -> BrowserSession | None:
    """The session in a cookie value, if its MAC is right and it has not expired."""
    if not value or value.count(".") != 3:
        return None
    user_id, issued, expires, mac = value.split(".")
    body = f"{user_id}.{issued}.{expires}"
    if not hmac.compare_digest(_mac(key, "session|" + body), mac) or not expires.isdigit():
        return None
    if int(expires) <= (now if now is not None else time.time()):
        return None
    return BrowserSession(user_id, int(issued))


def valid_for(session: BrowserSession, user: User | None) -> User | None:
    """``user``, if ``session`` may still act for them: the account is enabled and has not signed out since.

    A sign-out MUST end the session on the server, not only delete this browser's cookie: a copied cookie is
    refused from then on (OWASP ASVS 4.0.3 V3.3.1).
    """
    if user is None or user.disabled:
        return None
    if user.signed_out_at is not None and session.issued_ms <= user.signed_out_at.timestamp() * 1000:
        return None
    return user


async def sign_out(db: Database, user_id: str) -> None:
    """End every browser session of ``user_id`` issued until now (console and authorization pages alike)."""
    async with db.session() as session:
        await session.execute(update(User).where(User.id == user_id).values(signed_out_at=utcnow()))


def secure(request: Request) -> bool:
    """Cookies get the Secure attribute whenever the request came over https."""
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, value: str, ttl: int) -> None:
    """Set the session cookie: HttpOnly, SameSite=Lax (it must ride the client's redirect in), Secure on https."""
    response.set_cookie(
        SESSION_COOKIE, value, max_age=ttl, path=PATH, secure=secure(request), httponly=True, samesite="lax"
    )


def csrf_nonce(request: Request) -> tuple[str, bool]:
    """The browser's CSRF nonce, and whether it is new (and so must be set on the response)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    if nonce and 20 <= len(nonce) <= 100:
        return nonce, False
    return secrets.token_urlsafe(32), True


def set_csrf(response: Response, request: Request, nonce: str) -> None:
    """Set the CSRF nonce cookie: HttpOnly, SameSite=Strict (only this server's own forms carry it)."""
    response.set_cookie(CSRF_COOKIE, nonce, path=PATH, secure=secure(request), httponly=True, samesite="strict")


def csrf_token(key: bytes, nonce: str, purpose: str) -> str:
    """The value a form of ``purpose`` carries for this browser."""
    return _mac(key, f"csrf|{purpose}|{nonce}")


def csrf_ok(key: bytes, request: Request, purpose: str, submitted: str) -> bool:
    """The submitted value belongs to this browser's nonce and this form (constant-time)."""
    nonce = request.cookies.get(CSRF_COOKIE)
    return bool(nonce) and hmac.compare_digest(csrf_token(key, nonce or "", purpose), submitted or "")
