"""Bearer authentication for ``/api/v1`` (RFC 6750 §2.1: credentials only in the Authorization header)."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPBearer

from testgate.access.principal import Principal
from testgate.access.verifier import bearer_of, verify_bearer
from testgate.api.context import client_address, platform_of
from testgate.errors import Unauthenticated
from testgate.oauth.metadata import rest_resource_url

# Documents the scheme in OpenAPI; the check itself is ``principal_from_request``.
bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    description="An API token (tgp_...) as `Authorization: Bearer <token>`.",
    auto_error=False,
)


def bearer_token(request: Request) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; ``Unauthenticated`` otherwise."""
    if not request.headers.get("authorization"):
        raise Unauthenticated("this endpoint needs an Authorization: Bearer <token> header")
    token = bearer_of(request.headers.get("authorization"))
    if token is None:
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token


async def principal_from_request(request: Request) -> Principal:
    """The caller behind the request's bearer token.

    MUST raise ``Unauthenticated`` for a missing, malformed, unknown, expired or revoked token, and MUST
    read the token from the Authorization header only (never the query string: RFC 6750 §2.3, §5.3).
    The token itself is checked by ``access.verifier.verify_bearer``, shared with the MCP endpoint, which
    records the token's last use (time and this peer's address).
    """
    org, env = request.path_params.get("org"), request.path_params.get("env")
    # RFC 8707: an OAuth access token is accepted only by the environment it was issued for.
    resource = rest_resource_url(request.app.state.settings, org, env) if org and env else None
    principal = await verify_bearer(
        platform_of(request), bearer_token(request), source=client_address(request), resource=resource
    )
    request.state.principal = principal
    return principal
