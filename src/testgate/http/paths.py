"""What the front door needs to know about a path before any route matches it.

    MCP endpoints       /organizations/{org}/environments/{env}/(mcp|sse|messages/...)  JSON-RPC errors
    REST environments   /api/v1/organizations/{org}/environments/{env}/...               uploads allowed
    long poll           .../environments/{env}/wait                                      own timeout (<= 900 s)
    sign-in and tokens  /oauth/token, /oauth/authorize, /oauth/login, /oauth/register,
                        /oauth/revoke, /login, /setup, /invite                           stricter rate limit on
                        the requests presenting a credential: every POST, and the GETs of
                        /setup and /invite (their one-time secret is in the query) and of
                        /oauth/authorize (it may fetch a client's metadata document from a
                        URL the caller names); not the GETs of /login, which only show a form
    open to any origin  /.well-known/..., /oauth/jwks.json, /oauth/token, /oauth/register,
                        /oauth/revoke                                                    CORS * (oauth.routes)
    probes              /healthz, /readyz                                                no Host check, no limit
    pages               everything else (console, sign-in, consent, setup, invite)       HTML forms

The OAuth paths mirror ``testgate.oauth.routes``, which answers those with ``Access-Control-Allow-Origin: *``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_MCP = re.compile(r"^/organizations/[^/]+/environments/[^/]+/(mcp|sse|messages)(/.*)?$")
_REST_ENV = re.compile(r"^/api/v1/organizations/[^/]+/environments/[^/]+/")
_LONG_POLL = re.compile(r"^/api/v1/organizations/[^/]+/environments/[^/]+/wait$")
_ORG = re.compile(r"^(?:/api/v1)?/organizations/([^/]+)(?:/|$)")

SIGN_IN = frozenset(
    {
        "/oauth/token",
        "/oauth/authorize",
        "/oauth/login",
        "/oauth/register",
        "/oauth/revoke",
        "/login",
        "/setup",
        "/invite",
    }
)
SIGN_IN_FORMS = frozenset({"/login"})  # a GET shows a form, checks no secret and fetches nothing
OPEN_ORIGIN = frozenset({"/oauth/jwks.json", "/oauth/token", "/oauth/register", "/oauth/revoke"})
PROBES = frozenset({"/healthz", "/readyz"})
METRICS = "/metrics"


def presents_credential(method: str, path: str) -> bool:
    """A request the sign-in bucket counts: it carries a password, a code, a token or a one-time secret."""
    if path not in SIGN_IN or method == "OPTIONS":
        return False
    return method not in ("GET", "HEAD") or path not in SIGN_IN_FORMS


def is_mcp(path: str) -> bool:
    """An MCP transport endpoint: errors there are JSON-RPC error objects."""
    return _MCP.match(path) is not None


def mcp_endpoint(path: str) -> str | None:
    """``mcp``, ``sse`` or ``messages`` for an MCP endpoint, else None."""
    match = _MCP.match(path)
    return None if match is None else match.group(1)


def mcp_transport(path: str) -> str | None:
    """``mcp-http`` or ``mcp-sse`` for an MCP endpoint, else None."""
    endpoint = mcp_endpoint(path)
    if endpoint is None:
        return None
    return "mcp-http" if endpoint == "mcp" else "mcp-sse"


def takes_uploads(path: str) -> bool:
    """Routes whose bodies may carry whole result files (``upload_results`` over MCP or REST)."""
    return is_mcp(path) or _REST_ENV.match(path) is not None


def is_long_poll(path: str) -> bool:
    """``wait_for_executions`` over REST: it answers when the executions finish, bounded by its own timeout."""
    return _LONG_POLL.match(path) is not None


def is_open_origin(path: str) -> bool:
    """Discovery and token endpoints that any origin may call (public clients, browser-based MCP clients)."""
    return path.startswith("/.well-known/") or path in OPEN_ORIGIN


def is_page(path: str) -> bool:
    """The console and the sign-in and consent pages: HTML forms, each protected by its own CSRF token."""
    return transport_of(path) == "web" and not is_open_origin(path) and path not in PROBES and path != METRICS


def organization_of(path: str) -> str | None:
    """The organization slug a path names, if any."""
    match = _ORG.match(path)
    return unquote(match.group(1)) if match else None


def transport_of(path: str) -> str:
    """The audit transport of a request to ``path``."""
    mcp = mcp_transport(path)
    if mcp is not None:
        return mcp
    return "rest" if path.startswith(("/api/", "/oauth/token", "/oauth/register", "/oauth/revoke")) else "web"
