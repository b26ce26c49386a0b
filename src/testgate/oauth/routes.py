"""``install(app)``: the authorization server's endpoints.

    GET  /.well-known/oauth-authorization-server         RFC 8414 metadata (also at /.well-known/openid-configuration)
    GET  /.well-known/oauth-protected-resource           RFC 9728, the default environment's MCP URL
    GET  /.well-known/oauth-protected-resource/organizations/{org}/environments/{env}/mcp
    GET  /.well-known/oauth-protected-resource/api/v1/organizations/{org}/environments/{env}
    GET  /oauth/jwks.json                                RFC 7517 key set
    GET  /oauth/authorize, POST /oauth/authorize         authorization and consent (``endpoints``)
    POST /oauth/login                                    password sign-in
    POST /oauth/token                                    RFC 6749 §3.2
    POST /oauth/register                                 RFC 7591 (when ``oauth.dynamic_registration``)
    POST /oauth/revoke                                   RFC 7009
    POST /oauth/consents/{consent_id}/revoke             a person revokes a consent
    GET  /oauth/sso/start, GET /oauth/sso/callback       sign-in through the upstream OIDC provider (``sso_routes``)

Discovery and the JSON endpoints answer any origin (CORS ``*``, no credentials): browser-based MCP clients
need them, and none of them reads a cookie.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from testgate import jsontext
from testgate.oauth import clients, context, endpoints, events, keys, metadata, revoke, sso, sso_routes, token
from testgate.oauth.errors import NO_STORE, OAuthError, error_response, on_oauth_error

Handler = Callable[[Request], Awaitable[Response]]
MAX_REGISTRATION = 16 * 1024


def _public(handler: Handler, methods: list[str]) -> ASGIApp:
    """``handler`` with OAuth errors as JSON and CORS for any origin (credentials never allowed)."""

    async def guarded(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_response(exc)

    return CORSMiddleware(
        request_response(guarded),
        allow_origins=["*"],
        allow_methods=methods,
        allow_headers=["authorization", "content-type", "mcp-protocol-version"],
    )


async def jwks_endpoint(request: Request) -> JSONResponse:
    """``GET /oauth/jwks.json``: the public keys that may verify access tokens."""
    platform = context.platform_of(request)
    async with platform.db.session() as session:
        body = await keys.jwks(session, platform.settings.oauth)
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


async def registration_endpoint(request: Request) -> JSONResponse:
    """``POST /oauth/register`` (RFC 7591 §3.1): a JSON client metadata document in, client information out."""
    platform = context.platform_of(request)
    if not platform.settings.oauth.dynamic_registration:
        raise OAuthError("dynamic client registration is disabled on this server", status=404)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise OAuthError("the registration request must be application/json", error="invalid_client_metadata")
    body = await request.body()
    if len(body) > MAX_REGISTRATION:
        raise OAuthError("the registration request is too large", error="invalid_client_metadata")
    try:
        document = jsontext.loads(body)
    except ValueError:
        raise OAuthError("the registration request is not JSON", error="invalid_client_metadata") from None
    if not isinstance(document, dict):
        raise OAuthError("the registration request must be a JSON object", error="invalid_client_metadata")
    async with platform.db.session() as session:
        registered = await clients.register(session, document)
    row = registered.client
    event = events.AuthEvent("oauth.client_registered", "allowed", None, "client", row.client_id, row.client_name)
    event.resources = [events.client_resource(row.client_id, row.client_name)]
    event.arguments = {"redirect_uris": row.redirect_uris, "token_endpoint_auth_method": row.token_endpoint_auth_method}
    await events.record(platform, request, event, transport="rest")
    return JSONResponse(clients.registration_response(registered), status_code=201, headers=NO_STORE)


def install(app: FastAPI) -> None:
    """Mount the authorization server on ``app`` (``app.state.settings`` must be set)."""
    context.attach(app, app.state.settings)
    app.add_exception_handler(OAuthError, on_oauth_error)
    well_known = "/.well-known/oauth-protected-resource"
    discovery = [
        ("/.well-known/oauth-authorization-server", metadata.authorization_server_endpoint),
        ("/.well-known/openid-configuration", metadata.authorization_server_endpoint),
        (well_known, metadata.root_resource_endpoint),
        (well_known + "/organizations/{org}/environments/{env}/mcp", metadata.mcp_resource_endpoint),
        (well_known + "/api/v1/organizations/{org}/environments/{env}", metadata.rest_resource_endpoint),
        (metadata.JWKS, jwks_endpoint),
    ]
    routes = [Route(path, _public(handler, ["GET"]), methods=["GET", "OPTIONS"]) for path, handler in discovery]
    for path, handler in (
        (metadata.TOKEN, token.token_endpoint),
        (metadata.REGISTER, registration_endpoint),
        (metadata.REVOKE, revoke.revocation_endpoint),
    ):
        routes.append(Route(path, _public(handler, ["POST"]), methods=["POST", "OPTIONS"]))
    routes += [
        Route(metadata.AUTHORIZE, endpoints.authorize_get, methods=["GET"]),
        Route(metadata.AUTHORIZE, endpoints.consent_post, methods=["POST"]),
        Route("/oauth/login", endpoints.login_post, methods=["POST"]),
        Route("/oauth/consents/{consent_id}/revoke", endpoints.consent_revoke_post, methods=["POST"]),
        Route(sso.START, sso_routes.start, methods=["GET"]),
        Route(sso_routes.CALLBACK, sso_routes.callback, methods=["GET"]),
    ]
    # Before the catch-all mounts (the MCP app is mounted under /organizations/...).
    app.router.routes[0:0] = routes
