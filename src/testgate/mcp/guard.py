"""The door of the hosted MCP endpoints, checked on every HTTP request before the SDK sees it.

Host and Origin (DNS rebinding) were checked before: by the front door's ``HostCheck`` for every path,
and the SDK's transports check them again with the same rule. Order here: bearer token (401 with
RFC 9728 ``resource_metadata``) -> the environment in the path exists and the principal may see it
(404 otherwise) -> the request carries a ``Caller`` and a session owner. The SDK refuses a session id
presented by any other owner (404, as if the session did not exist); the owner names the principal
*and* the environment, so a session opened under one environment's path cannot be used under
another's, nor with another token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.access.principal import Permission, Principal
from testgate.access.verifier import bearer_of, verify_bearer
from testgate.audit import recorder
from testgate.config import Settings
from testgate.errors import NotFound, Unauthenticated
from testgate.http.headers import header
from testgate.http.origin import origin_of
from testgate.mcp.caller import SCOPE_KEY, Caller
from testgate.mcp.tools import PlatformRef
from testgate.oauth.metadata import resource_url, www_authenticate
from testgate.operations.context import Transport
from testgate.platform import tenancy

log = structlog.get_logger("testgate.mcp")

K = TypeVar("K")
V = TypeVar("V")
MEMO_SIZE = 4096  # resource URLs and session owners remembered (all forgotten at once when full)
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")  # noqa: S104 - names, not a bind


def unauthorized(settings: Settings, org: str, env: str, error: str | None) -> Response:
    """401 with a challenge naming the protected-resource metadata and the scope (MCP authorization)."""
    # RFC 6750 §3.1: no error code when the request carried no credentials at all.
    challenge = www_authenticate(settings, org, env, error="invalid_token" if error else None, description=error)
    body = {
        "error": "invalid_token" if error else "unauthorized",
        "error_description": error or "a bearer token is required",
    }
    headers = {"WWW-Authenticate": challenge}
    return Response(json.dumps(body), status_code=401, media_type="application/json", headers=headers)


def not_found(message: str) -> Response:
    """A JSON-RPC error with HTTP 404: the environment is absent or not this caller's to see."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
    return Response(json.dumps(body), status_code=404, media_type="application/json")


async def visible(platform: PlatformRef, principal: Principal, org_slug: str, env_slug: str) -> bool:
    """The environment exists in the principal's organization and the principal holds a permission there."""
    current = platform()
    try:
        org_id, env_id = await tenancy.environment_ids(current.db, current.scopes, org_slug, env_slug)
    except NotFound:
        return False
    return org_id == principal.organization_id and principal.permission_in(env_id) > Permission.NONE


def session_owner(caller: Caller, resource: str) -> AuthenticatedUser:
    """The identity the SDK binds sessions to: (client_id, issuer, subject) = (caller key, resource, user)."""
    principal = caller.principal
    token = AccessToken(
        token=f"{principal.kind}:{principal.id}",
        client_id=caller.key,
        scopes=[],
        resource=resource,
        subject=principal.user_id or principal.id,
        claims={"iss": resource},
    )
    return AuthenticatedUser(token)


def _remembered(memo: dict[K, V], key: K, make: Callable[[], V]) -> V:
    """``memo[key]``, made first if absent (a full memo is forgotten at once: its entries are cheap to remake)."""
    found = memo.get(key)
    if found is None:
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        found = memo[key] = make()
    return found


class Guard:
    """Wraps one transport endpoint so that no request reaches it unchecked."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        transport: Transport,
        platform: PlatformRef,
        settings: Settings,
    ) -> None:
        self.app, self.transport, self.platform, self.settings = app, transport, platform, settings
        # Per environment path: its resource URL; per caller key and resource: the session owner.
        self._resources: dict[tuple[str, str], str] = {}
        self._owners: dict[tuple[str, str], AuthenticatedUser] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        org, env = str(scope["path_params"]["org"]), str(scope["path_params"]["env"])
        resource = self._resource(org, env)
        caller = await self._admit(scope, org, env, resource)
        if isinstance(caller, Response):
            await caller(scope, receive, send)
            return
        scope[SCOPE_KEY] = caller
        scope["user"] = self._owner(caller, resource)
        await self.app(scope, receive, send)

    def _resource(self, org: str, env: str) -> str:
        return _remembered(self._resources, (org, env), lambda: resource_url(self.settings, org, env))

    def _owner(self, caller: Caller, resource: str) -> AuthenticatedUser:
        return _remembered(self._owners, (caller.key, resource), lambda: session_owner(caller, resource))

    async def _admit(self, scope: Scope, org: str, env: str, resource: str) -> Caller | Response:
        """The authenticated caller, or the response refusing the request."""
        client = scope.get("client")
        source = client[0] if client else None
        token = bearer_of(header(scope, b"authorization"))
        if token is None:
            return unauthorized(self.settings, org, env, None)
        try:
            principal = await verify_bearer(self.platform(), token, source=source, resource=resource)
        except Unauthenticated as exc:
            log.info("mcp authentication failed", reason=str(exc), source=source, path=scope["path"])
            return unauthorized(self.settings, org, env, str(exc))
        # The front door has assigned the request id (``testgate.http.observe``); without it, one is assigned here.
        caller = Caller(
            principal=principal, organization=org, environment=env, transport=self.transport, **origin_of(scope)
        )
        if not await visible(self.platform, principal, org, env):
            reason = f"environment {env!r} not found in organization {org!r}"
            await self._refused(caller, reason)
            return not_found(reason)
        return caller

    async def _refused(self, caller: Caller, reason: str) -> None:
        """Audit a request refused at the door (as dispatch audits an operation refused for its scope), in
        the caller's own organization: the one addressed may not exist, or not be theirs to know of."""
        p = caller.principal
        event = recorder.Event(
            organization_id=p.organization_id,
            action="mcp.request",
            outcome="denied",
            transport=caller.transport,
            actor_type=p.kind,
            actor_id=p.id,
            actor_name=p.name,
            reason=reason,
            request_id=caller.request_id,
            source_address=caller.source_address,
            user_agent=caller.user_agent,
            arguments={"organization": caller.organization, "environment": caller.environment},
        )
        try:
            await self.platform().audit.record(event)
        except Exception:
            log.exception("audit write failed for a refused MCP request", request_id=caller.request_id)
