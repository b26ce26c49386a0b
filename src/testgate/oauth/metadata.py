"""Discovery: RFC 9728 protected-resource metadata, RFC 8414 authorization-server metadata, and the challenges.

Each environment's MCP URL is its own protected resource (and token audience):

    resource            {base}/organizations/{org}/environments/{env}/mcp
    its metadata        {base}/.well-known/oauth-protected-resource/organizations/{org}/environments/{env}/mcp
    REST resource       {base}/api/v1/organizations/{org}/environments/{env}   (metadata path-inserted alike)
    root metadata       {base}/.well-known/oauth-protected-resource            (the default environment's MCP URL)

The issuer is ``settings.base_url``; a token's ``aud`` is exactly the resource it was requested for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse

from testgate.config import Settings
from testgate.oauth import scopes
from testgate.platform import links

AUTHORIZE = "/oauth/authorize"
TOKEN = "/oauth/token"
REGISTER = "/oauth/register"
REVOKE = "/oauth/revoke"
JWKS = "/oauth/jwks.json"
WELL_KNOWN_RESOURCE = "/.well-known/oauth-protected-resource"
REALM = "testgate"
_MCP_PATH = re.compile(r"^/organizations/([^/]+)/environments/([^/]+)/mcp$")
_REST_PATH = re.compile(r"^/api/v1/organizations/([^/]+)/environments/([^/]+)$")
_CACHE = {"Cache-Control": "public, max-age=300"}


@dataclass(frozen=True)
class Target:
    """The environment a resource URL names, and which door (MCP or REST) it is."""

    organization: str
    environment: str
    kind: Literal["mcp", "rest"]


def issuer(settings: Settings) -> str:
    """RFC 8414 §2: the issuer identifier, an https URL without query or fragment (http on loopback for labs)."""
    return settings.base_url


def resource_url(settings: Settings, org: str, env: str) -> str:
    """The environment's MCP URL: its RFC 9728 resource identifier and its tokens' audience."""
    return links.mcp_url(settings.base_url, org, env)


def rest_resource_url(settings: Settings, org: str, env: str) -> str:
    """The environment's REST base, a resource of its own for tokens meant for ``/api/v1``."""
    return links.api_url(settings.base_url, org, env)


def metadata_url(settings: Settings, org: str, env: str, kind: Literal["mcp", "rest"] = "mcp") -> str:
    """RFC 9728 §3.1: the well-known segment is inserted between the host and the resource's path."""
    build = resource_url if kind == "mcp" else rest_resource_url
    resource = urlsplit(build(settings, org, env))
    return f"{resource.scheme}://{resource.netloc}{WELL_KNOWN_RESOURCE}{resource.path}"


def parse_resource(settings: Settings, resource: str) -> Target | None:
    """The environment ``resource`` names if it is exactly one of this server's resource URLs (RFC 8707 §2)."""
    base = settings.base_url
    if not resource.startswith(base + "/"):
        return None
    path = resource[len(base) :]
    for pattern, kind, build in ((_MCP_PATH, "mcp", resource_url), (_REST_PATH, "rest", rest_resource_url)):
        match = pattern.match(path)
        if match:
            org, env = unquote(match[1]), unquote(match[2])
            if build(settings, org, env) == resource:
                return Target(org, env, "mcp" if kind == "mcp" else "rest")
    return None


def protected_resource(settings: Settings, resource: str) -> dict[str, Any]:
    """RFC 9728 §2 metadata for one resource: only header bearer tokens (RFC 6750 §2.1)."""
    return {
        "resource": resource,
        "authorization_servers": [issuer(settings)],
        "scopes_supported": list(scopes.SUPPORTED),
        "bearer_methods_supported": ["header"],
        "resource_name": "testgate",
    }


def authorization_server(settings: Settings) -> dict[str, Any]:
    """RFC 8414 §2 metadata, with the MCP authorization spec's CIMD and RFC 9207 flags."""
    base = issuer(settings)
    document: dict[str, Any] = {
        "issuer": base,
        "authorization_endpoint": base + AUTHORIZE,
        "token_endpoint": base + TOKEN,
        "revocation_endpoint": base + REVOKE,
        "jwks_uri": base + JWKS,
        "scopes_supported": list(scopes.SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "client_id_metadata_document_supported": settings.oauth.client_metadata_documents,
        "authorization_response_iss_parameter_supported": True,
    }
    if settings.oauth.dynamic_registration:
        document["registration_endpoint"] = base + REGISTER
    return document


def _quoted(value: str) -> str:
    return "".join(c for c in value if c.isprintable() and c not in '"\\')


def www_authenticate(
    settings: Settings,
    org: str,
    env: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = scopes.DEFAULT,
    kind: Literal["mcp", "rest"] = "mcp",
) -> str:
    """The ``WWW-Authenticate`` value of a 401 (or, with ``error="insufficient_scope"``, a 403).

    RFC 6750 §3: no ``error`` when the request carried no credentials; RFC 9728 §5.1 ``resource_metadata``
    lets the client discover the authorization server; ``scope`` names what to ask for (MCP scope selection).
    ``kind="rest"`` points at the metadata of the environment's REST base instead of its MCP URL.
    """
    parts = [f'realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{_quoted(error)}"')
        if description:
            parts.append(f'error_description="{_quoted(description)}"')
    parts.append(f'resource_metadata="{metadata_url(settings, org, env, kind)}"')
    if scope:
        parts.append(f'scope="{_quoted(scope)}"')
    return "Bearer " + ", ".join(parts)


def insufficient_scope(settings: Settings, org: str, env: str, scope: str, kind: Literal["mcp", "rest"] = "mcp") -> str:
    """The challenge of a 403 whose cause is the token's scope (RFC 6750 §3.1, MCP step-up authorization)."""
    description = f"this needs the {scope} scope"
    return www_authenticate(
        settings, org, env, error="insufficient_scope", description=description, scope=scope, kind=kind
    )


async def authorization_server_endpoint(request: Request) -> JSONResponse:
    """``GET /.well-known/oauth-authorization-server`` (and ``/.well-known/openid-configuration``)."""
    return JSONResponse(authorization_server(request.app.state.settings), headers=_CACHE)


async def root_resource_endpoint(request: Request) -> JSONResponse:
    """``GET /.well-known/oauth-protected-resource``: the default environment's MCP URL."""
    settings: Settings = request.app.state.settings
    resource = resource_url(settings, settings.default_organization, settings.default_environment)
    return JSONResponse(protected_resource(settings, resource), headers=_CACHE)


async def mcp_resource_endpoint(request: Request) -> JSONResponse:
    """``GET /.well-known/oauth-protected-resource/organizations/{org}/environments/{env}/mcp``."""
    settings: Settings = request.app.state.settings
    org, env = request.path_params["org"], request.path_params["env"]
    return JSONResponse(protected_resource(settings, resource_url(settings, org, env)), headers=_CACHE)


async def rest_resource_endpoint(request: Request) -> JSONResponse:
    """``GET /.well-known/oauth-protected-resource/api/v1/organizations/{org}/environments/{env}``."""
    settings: Settings = request.app.state.settings
    org, env = request.path_params["org"], request.path_params["env"]
    return JSONResponse(protected_resource(settings, rest_resource_url(settings, org, env)), headers=_CACHE)
