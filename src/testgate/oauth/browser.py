"""The authorization server's browser state: a signed session cookie and anti-CSRF values.

The session cookie holds ``user id . issued-at . expiry`` and an HMAC-SHA256 over them with a key kept in
the database (so every replica accepts it); it is HttpOnly, SameSite=Lax, Secure on https, and scoped to
``/oauth``. Every form carries HMAC(key, nonce | purpose), where the nonce lives in an HttpOnly SameSite=Strict
cookie: a cross-site form post carries neither (double-submit, OWASP CSRF cheat sheet).
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
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from testgate.store.db import Database
from testgate.store.oauth import ServerSecret

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
    """Who is signed in to the authorization pages, since when."""

    user_id: str
    issued_at: int


def seal(key: bytes, user_id: str, ttl: int, now: float | None = None) -> str:
    """A session cookie value for ``user_id`` valid ``ttl`` seconds."""
    issued = int(now if now is not None else time.time())
    body = f"{user_id}.{issued}.{issued + ttl}"
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
