"""The pages a person sees: sign-in, consent, and errors that must not go back to the client.

Every page loads nothing, runs no script and can't be framed (CSP ``default-src 'none'``, ``frame-ancestors
'none'``, X-Frame-Options DENY), is never cached, and sends no Referer. ``form-action`` allows this server
and the client's redirect origin only, because a form whose answer is a redirect is checked against it
(CSP3 §6.3.1; RFC 9700 §4.11: after a form post the redirect is a 303, never a 307).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from testgate.access.principal import Permission
from testgate.oauth import browser, scopes, sso
from testgate.oauth.authorize import Request as AuthorizationRequest
from testgate.store.tenancy import User

BASE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
}
_SOURCE = re.compile(r"^[a-z][a-z0-9.+-]*:(//[A-Za-z0-9.\-\[\]:]+)?$")
_templates = Environment(loader=PackageLoader("testgate", "web/templates"), autoescape=select_autoescape(["html"]))


def redirect_source(uri: str) -> str | None:
    """The CSP source expression of a redirect URI's origin (``https://host:port``, or ``scheme:``)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    source = f"{scheme}://{parts.netloc.rpartition('@')[2]}" if scheme in ("http", "https") else f"{scheme}:"
    return source if _SOURCE.match(source) else None


def csp(form_targets: Iterable[str] = ()) -> str:
    """The page's Content-Security-Policy."""
    sources = " ".join(["'self'", *(s for s in (redirect_source(u) for u in form_targets) if s)])
    return f"default-src 'none'; style-src 'self'; form-action {sources}; frame-ancestors 'none'; base-uri 'none'"


def render(template: str, status: int, *, form_targets: Iterable[str] = (), **context: Any) -> HTMLResponse:
    """A page with the security headers above."""
    html = _templates.get_template(template).render(**context)
    headers = {**BASE_HEADERS, "Content-Security-Policy": csp(form_targets)}
    return HTMLResponse(html, status_code=status, headers=headers)


def error_page(status: int, error: str, description: str, *, title: str = "Authorization failed") -> HTMLResponse:
    """RFC 6749 §4.1.2.1: an error the person is told about, because the client can't be trusted with it."""
    message = description[:1].upper() + description[1:] + "."
    return render("base.html", status, title=title, error=message, error_code=error)


def message_page(title: str, message: str, status: int = 200) -> HTMLResponse:
    """A page that only tells the person something."""
    return render("base.html", status, title=title, message=message)


def client_name(request: AuthorizationRequest) -> str:
    """What the pages call the client: its name, else its id."""
    return request.client.client_name or request.client.client_id


def _identity(request: AuthorizationRequest) -> str:
    client = request.client
    if client.kind == "cimd":
        host = urlsplit(client.client_id).hostname or client.client_id
        return f"Its identity is published at {client.client_id} (on {host})."
    return "It registered itself with this server; testgate cannot vouch for its name."


def _with_csrf(response: HTMLResponse, request: Request, nonce: str, new: bool) -> HTMLResponse:
    if new:
        browser.set_csrf(response, request, nonce)
    return response


def login_page(
    request: Request, key: bytes, auth: AuthorizationRequest, *, status: int = 200, error: str = "", email: str = ""
) -> HTMLResponse:
    """The sign-in form, carrying the authorization request to resume."""
    nonce, new = browser.csrf_nonce(request)
    response = render(
        "login.html",
        status,
        form_targets=[auth.redirect_uri],
        title="Sign in",
        error=error,
        email=email,
        client_name=client_name(auth),
        request_query=auth.query,
        csrf=browser.csrf_token(key, nonce, "login"),
        sso=sso.login_link(request.app.state.settings.oauth.upstream, auth.query),
    )
    return _with_csrf(response, request, nonce, new)


def consent_page(
    request: Request, key: bytes, auth: AuthorizationRequest, user: User, held: Permission, access_ttl: int
) -> HTMLResponse:
    """The consent form: the client, the environment, the scopes, and what the person holds there."""
    nonce, new = browser.csrf_nonce(request)
    redirect = urlsplit(auth.redirect_uri)
    response = render(
        "consent.html",
        200,
        form_targets=[auth.redirect_uri],
        title="Allow access?",
        client_name=client_name(auth),
        client_uri=auth.client.client_uri,
        client_identity=_identity(auth),
        user_email=user.email,
        environment=auth.environment.name,
        organization=auth.organization.name,
        scopes=[{"name": s, "description": scopes.DESCRIPTIONS[s]} for s in auth.scopes],
        held=held.label,
        capped=held < scopes.cap(auth.scopes),
        redirect_host=redirect.netloc or f"{redirect.scheme}: (an application on this device)",
        access_minutes=max(1, access_ttl // 60),
        request_query=auth.query,
        csrf=browser.csrf_token(key, nonce, consent_purpose(user.id)),
    )
    return _with_csrf(response, request, nonce, new)


def consent_purpose(user_id: str) -> str:
    """The CSRF purpose of the consent form: bound to the signed-in person."""
    return f"consent|{user_id}"


def revoke_purpose(user_id: str) -> str:
    """The CSRF purpose of a consent-revocation form (``browser.csrf_token(key, nonce, revoke_purpose(uid))``)."""
    return f"consent-revoke|{user_id}"
