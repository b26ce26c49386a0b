"""``testgate mcp serve`` with a login (or ``TESTGATE_TOKEN``): stdio bridged to the hosted MCP endpoint.

JSON-RPC messages are pumped as they are, both ways, between the SDK's stdio server transport and its
streamable HTTP client transport: requests, notifications and responses of either side, so a server's
elicitation reaches the local client and its answer goes back. The bridge adds the bearer token and the
MCP routing headers (``MCP-Protocol-Version``, and ``Mcp-Method``/``Mcp-Name`` for 2026-era requests), and
nothing else: every permission, confirmation and audit stays on the server.

Credentials, on every HTTP request (proxies and CA bundle from ``http.outbound``):

- a login (``testgate login``): refreshed ``REFRESH_MARGIN`` seconds before it expires and once after a
  401 (RFC 6750 §3.1); under the credential store's lock, re-reading the file first, so a refresh another
  process made is reused instead of repeated (a rotated refresh token used twice revokes its family);
- an API token (``TESTGATE_TOKEN`` with ``TESTGATE_URL``, for containers and CI): never refreshed; a 401
  is final and said on stderr.

stdout carries only MCP messages; logs go to stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
import httpx2
import structlog
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata, SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    PROTOCOL_VERSION_META_KEY,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)

from testgate import __version__
from testgate.cli.credentials import Context, CredentialStore
from testgate.cli.login import endpoint_url, fetch_json, outbound
from testgate.config import Settings
from testgate.errors import Unauthenticated
from testgate.http.outbound import Outbound

REFRESH_MARGIN = 60.0
READ_SECONDS = 300.0  # a long tool call (wait_for_executions) may take this long to answer
DRAIN_SECONDS = READ_SECONDS  # after stdin closes, how long answers to forwarded requests are still awaited
log = structlog.get_logger("testgate.mcp.bridge")


class Tokens(Protocol):
    """Where the bearer token comes from: a login (refreshable) or an API token (fixed)."""

    async def current(self) -> str:
        """The token to send now (refreshed first when it is about to expire)."""
        ...

    async def after_refusal(self, refused: str) -> str | None:
        """A new token to retry with after ``refused`` got a 401, or None when there is none."""
        ...


@dataclass
class ApiToken:
    """``TESTGATE_TOKEN``: sent as it is; nothing to refresh."""

    token: str

    async def current(self) -> str:
        return self.token

    async def after_refusal(self, refused: str) -> str | None:
        log.error(
            "the server refused TESTGATE_TOKEN (HTTP 401): the token is unknown, expired or revoked, "
            "or TESTGATE_URL names an environment it has no access to"
        )
        return None


class LoginTokens:
    """The tokens of a ``testgate login`` context, refreshed as they near expiry and after a 401."""

    def __init__(self, store: CredentialStore, context: Context, out: Outbound, margin: float = REFRESH_MARGIN):
        self.store, self.context, self.out, self.margin = store, context, out, margin
        self.lock = anyio.Lock()
        self.refused: str | None = None  # a refresh token the server refused: not sent again

    async def current(self) -> str:
        if self.context.expires_within(self.margin):
            await self.refresh(self.context.access_token)
        return self.context.access_token

    async def after_refusal(self, refused: str) -> str | None:
        fresh = await self.refresh(refused)
        return self.context.access_token if fresh else None

    async def refresh(self, stale: str) -> bool:
        """Replace ``stale``: by a token another process stored, else by a refresh (RFC 6749 §6); False if neither."""
        async with self.lock, self.store.locked():
            stored = self.store.context()
            if stored is None or stored.resource != self.context.resource:
                log.error("the login was removed (testgate logout?); run `testgate login` again")
                return False
            if stored.access_token != stale and not stored.expires_within(self.margin):
                self.context = stored
                return True
            if stored.refresh_token is None or stored.refresh_token == self.refused:
                log.error("the login has no usable refresh token; run `testgate login` again")
                return False
            form = {
                "grant_type": "refresh_token",
                "refresh_token": stored.refresh_token,
                "client_id": stored.client_id,
                "resource": stored.resource,
            }
            try:
                status, answer = await fetch_json(self.out, "POST", stored.token_endpoint, data=form)
            except Unauthenticated as exc:
                log.error("the token could not be refreshed", reason=str(exc))
                return False
            if status != 200:
                self.refused = stored.refresh_token
                reason = answer.get("error_description", answer.get("error", status))
                log.error("the login expired or was revoked; run `testgate login` again", reason=reason)
                return False
            self.context = stored.with_tokens(answer)
            self.store.save(self.context)
        log.info("access token refreshed", expires_in=int(self.context.expires_at - time.time()))
        return True


class Bearer(httpx2.Auth):
    """RFC 6750 §2.1 on every request; after a 401, one retry with whatever ``after_refusal`` gives."""

    requires_request_body = True  # the retry sends the same body again

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.tokens.current()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        fresh = await self.tokens.after_refusal(token)
        if fresh is not None:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request


class Headers:
    """The MCP routing headers each forwarded message needs, from the version the two ends negotiated."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.initialize: Any = None

    def outgoing(self, message: JSONRPCMessage) -> SessionMessage:
        """A local client's message, stamped for the streamable HTTP transport."""
        if isinstance(message, JSONRPCRequest) and message.method == "initialize":
            self.initialize, self.version = message.id, None
        headers = self.headers(message)
        return SessionMessage(message, ClientMessageMetadata(headers=headers) if headers else None)

    def incoming(self, message: JSONRPCMessage) -> SessionMessage:
        """A server's message; the answer to ``initialize`` fixes the legacy era's protocol version."""
        if isinstance(message, JSONRPCResponse) and self.initialize is not None and message.id == self.initialize:
            version = message.result.get("protocolVersion")
            self.version = version if isinstance(version, str) else None
        return SessionMessage(message)

    def headers(self, message: JSONRPCMessage) -> dict[str, str]:
        method = getattr(message, "method", None)
        params = getattr(message, "params", None) or {}
        meta = params.get("_meta") if isinstance(params, dict) else None
        envelope = meta.get(PROTOCOL_VERSION_META_KEY) if isinstance(meta, dict) else None
        if isinstance(envelope, str) and isinstance(method, str):
            # 2026 era: the headers MUST mirror the request's envelope, method and name (transports §Routing).
            headers = {MCP_PROTOCOL_VERSION_HEADER: envelope, MCP_METHOD_HEADER: method}
            name = params.get(NAME_BEARING_METHODS.get(method, ""))
            if isinstance(name, str):
                headers[MCP_NAME_HEADER] = encode_header_value(name)
            return headers
        if self.version is not None and method != "initialize":
            return {MCP_PROTOCOL_VERSION_HEADER: self.version}
        return {}


class ClientFacingErrors(httpx2.AsyncBaseTransport):
    """What the local client is told when the server cannot answer its request: a server that can't be reached
    answers 502 with a JSON-RPC error, and a refusal of the credentials (401) carries one too, so the client
    (an agent, often) reads why instead of a bare "error response". The bridge stays up."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except httpx2.TransportError as exc:
            url = request.url
            where = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port is not None else "")
            reason = f"testgate bridge: {where} could not be reached ({exc or type(exc).__name__})"
            log.error("the server could not be reached", url=str(request.url), error=str(exc))
            return _jsonrpc_error(502, reason)
        if response.status_code != 401:
            return response
        # Still a 401 with the server's challenge: ``Bearer`` retries with a refreshed login as before.
        await response.aread()
        try:
            description = str(json.loads(response.content).get("error_description", ""))
        except (ValueError, AttributeError):
            description = ""
        said = f": {description}" if description else ""
        reason = (
            f"testgate bridge: the server refused the credentials (HTTP 401{said}); "
            "run `testgate login` again, or check TESTGATE_TOKEN and TESTGATE_URL"
        )
        return _jsonrpc_error(401, reason, response.headers.get("WWW-Authenticate"))

    async def aclose(self) -> None:
        await self.inner.aclose()


def _jsonrpc_error(status: int, reason: str, challenge: str | None = None) -> httpx2.Response:
    headers = {"WWW-Authenticate": challenge} if challenge else None
    error = {"code": INTERNAL_ERROR, "message": reason}
    return httpx2.Response(status, headers=headers, json={"jsonrpc": "2.0", "id": None, "error": error})


def http_client(out: Outbound, endpoint: str, auth: httpx2.Auth) -> httpx2.AsyncClient:
    """The bridge's HTTP client: the outbound proxy decision and trust, the environment never re-read."""
    inner = httpx2.AsyncHTTPTransport(verify=out.ssl_context(), proxy=out.proxy_for(endpoint), trust_env=False)
    return httpx2.AsyncClient(
        auth=auth,
        transport=ClientFacingErrors(inner),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx2.Timeout(30, read=READ_SECONDS),
        headers={"User-Agent": f"testgate-bridge/{__version__}"},
    )


async def bridge(endpoint: str, tokens: Tokens, out: Outbound) -> None:
    """Pump MCP messages between stdin/stdout and ``endpoint`` until either side closes.

    Once stdin closes, the answers to the requests already forwarded are still delivered (for at most
    ``DRAIN_SECONDS``, the HTTP read timeout), then the bridge ends: a client that writes its requests and
    closes its input still reads every answer, and the process exits instead of waiting on the server.
    """
    stamps = Headers()
    awaited: set[RequestId] = set()  # the client's requests not answered yet
    local_closed = anyio.Event()
    async with (
        stdio_server() as (local_read, local_write),
        http_client(out, endpoint, Bearer(tokens)) as http,
        streamable_http_client(endpoint, http_client=http) as (remote_read, remote_write),
        anyio.create_task_group() as group,
    ):

        async def upward() -> None:
            async for item in local_read:
                if isinstance(item, Exception):
                    log.warning("a message from the client could not be read", error=str(item))
                    continue
                message = item.message
                if isinstance(message, JSONRPCRequest):
                    awaited.add(message.id)
                elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
                    awaited.discard((message.params or {}).get("requestId"))  # its answer will not come
                await remote_write.send(stamps.outgoing(message))
            local_closed.set()
            if awaited:
                await anyio.sleep(DRAIN_SECONDS)
                log.warning("stdin closed; gave up waiting for the server's answers", unanswered=len(awaited))
            group.cancel_scope.cancel()

        group.start_soon(upward)
        async with local_write:  # closed at the end: stdout is flushed and the stdio transport can end
            async for item in remote_read:
                if isinstance(item, Exception):
                    log.warning("a message from the server could not be read", error=str(item))
                    continue
                message = item.message
                await local_write.send(stamps.incoming(message))
                if isinstance(message, JSONRPCResponse | JSONRPCError):
                    awaited.discard(message.id)
                    if local_closed.is_set() and not awaited:
                        break
        group.cancel_scope.cancel()


@dataclass(frozen=True)
class Plan:
    """Where the bridge goes and with which credentials."""

    endpoint: str
    tokens: Tokens
    out: Outbound
    who: str


def plan(
    settings: Settings, environ: Mapping[str, str], org: str | None, env: str | None, ca_bundle: Path | None
) -> Plan | None:
    """The bridge to run, or None to serve the platform in this process (no login, no ``TESTGATE_TOKEN``).

    ``environ`` is read by the caller, at the edge. ``Unauthenticated`` names what is inconsistent.
    """
    out = outbound(settings, ca_bundle)
    token, url = environ.get("TESTGATE_TOKEN"), environ.get("TESTGATE_URL")
    if token or url:
        if not (token and url):
            raise Unauthenticated("set both TESTGATE_TOKEN and TESTGATE_URL to bridge with an API token")
        org, env = org or settings.default_organization, env or settings.default_environment
        endpoint = endpoint_url(url, org, env) or url
        return Plan(endpoint, ApiToken(token), out, "an API token")
    store = CredentialStore(settings.config_dir)
    context = store.context()
    if context is None:
        return None
    if (org and org != context.organization) or (env and env != context.environment):
        raise Unauthenticated(
            f"you are logged in to {context.organization}/{context.environment}; "
            f"run `testgate login {context.server} --org {org or context.organization} "
            f"--env {env or context.environment}` to switch"
        )
    return Plan(context.resource, LoginTokens(store, context, out), out, "your login")


async def serve_bridge(chosen: Plan) -> None:
    """Run ``chosen`` until the local client closes stdin (and its requests are answered)."""
    log.info("bridging stdio to the hosted MCP endpoint", endpoint=chosen.endpoint, credentials=chosen.who)
    await bridge(chosen.endpoint, chosen.tokens, chosen.out)


def run(chosen: Plan) -> int:
    """The CLI's entry point: 0 when the client closed stdin, 1 when the bridge failed (logged here, once)."""
    try:
        anyio.run(serve_bridge, chosen)
    except Exception as exc:
        log.error("the bridge stopped", error=repr(exc), exc_info=True)
        return 1
    return 0
