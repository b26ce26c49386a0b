"""``testgate login URL``, ``logout`` and ``whoami``: the CLI as an OAuth client of a testgate server.

``login`` finds the environment's MCP URL and its authorization server by discovery (RFC 9728, RFC 8414),
registers itself once per server (RFC 7591; public client, loopback redirect), and runs the authorization
code flow with PKCE S256 (RFC 7636) and ``resource`` (RFC 8707) through the person's browser, receiving
the answer on a one-shot listener at ``http://127.0.0.1:<random port>/callback`` (RFC 8252 §7.3). The
answer MUST carry this attempt's ``state`` (RFC 6749 §10.12) and, where the server says it sends one, its
``iss`` (RFC 9207 §2.4). ``logout`` revokes the refresh token (RFC 7009), and with it the access token,
before forgetting both. Tokens are never printed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
import webbrowser
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlencode, urlsplit

import httpx
import typer

from testgate.cli.credentials import Context, CredentialStore
from testgate.cli.local import run
from testgate.cli.loopback import Loopback
from testgate.cli.params import Env, Org
from testgate.config import Settings
from testgate.errors import Unauthenticated
from testgate.http.outbound import Outbound
from testgate.oauth.pkce import s256
from testgate.platform import links

SCOPE = "testgate:read testgate:run testgate:write"
CLIENT_NAME = "testgate CLI"
REDIRECT = "http://127.0.0.1/callback"  # registered without a port: RFC 8252 §7.3 lets the port vary
TIMEOUT = 30.0
_MCP_PATH = re.compile(r"^(.*)/organizations/([^/]+)/environments/([^/]+)/mcp$")

CaBundle = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        envvar="TESTGATE_CA_BUNDLE",
        help="Extra CA certificates (PEM) to trust (default: $TESTGATE_OAUTH__CA_BUNDLE).",
        exists=True,
        dir_okay=False,
        show_default=False,
    ),
]


def outbound(settings: Settings, ca_bundle: Path | None) -> Outbound:
    """Proxies from the environment (read here, at the edge) and the CA bundle to trust."""
    return Outbound.from_environ(ca_bundle=ca_bundle or settings.oauth.ca_bundle)


def endpoint_url(url: str, org: str | None, env: str | None) -> str | None:
    """The environment's MCP URL: ``url`` itself when it is one, else built from ``--org``/``--env``."""
    if _MCP_PATH.match(urlsplit(url).path):
        return url
    if org and env:
        return links.mcp_url(url, org, env)
    return None


async def fetch_json(out: Outbound, method: str, url: str, **request: Any) -> tuple[int, dict[str, Any]]:
    """The status and JSON object (``{}`` if none) of one request through the outbound client."""
    try:
        async with out.client(url, timeout=TIMEOUT) as http:
            response = await http.request(method, url, **request)
    except httpx.HTTPError as exc:
        raise Unauthenticated(f"{url} could not be reached: {exc}") from None
    try:
        body = response.json() if response.content else {}
    except ValueError:
        raise Unauthenticated(f"{url} did not answer JSON (HTTP {response.status_code})") from None
    return response.status_code, body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class Server:
    """What discovery found: the resource, its authorization server, and the endpoints used here."""

    resource: str
    organization: str
    environment: str
    issuer: str
    metadata: dict[str, Any]

    def endpoint(self, name: str) -> str:
        value = self.metadata.get(name)
        if not isinstance(value, str):
            raise Unauthenticated(f"the authorization server {self.issuer} has no {name}")
        return value


def _well_known(url: str, suffix: str) -> str:
    """RFC 9728 §3.1 / RFC 8414 §3.1: the well-known segment goes between the host and the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/.well-known/{suffix}{parts.path.rstrip('/')}"


async def discover(out: Outbound, url: str, org: str | None, env: str | None) -> Server:
    """The environment's resource and authorization server, from the server's published metadata."""
    wanted = endpoint_url(url, org, env)
    status, prm = await fetch_json(out, "GET", _well_known(wanted or url, "oauth-protected-resource"))
    resource, servers = prm.get("resource"), prm.get("authorization_servers")
    if status != 200 or not isinstance(resource, str) or not isinstance(servers, list) or not servers:
        raise Unauthenticated(f"{url} publishes no protected-resource metadata (RFC 9728); is it a testgate server?")
    if wanted is not None and resource != wanted:
        raise Unauthenticated("the protected-resource metadata names another resource (RFC 9728 §3.3)")
    match = _MCP_PATH.match(urlsplit(resource).path)
    if match is None:
        raise Unauthenticated(f"{resource} is not an environment's MCP URL")
    issuer = str(servers[0])
    status, meta = await fetch_json(out, "GET", _well_known(issuer, "oauth-authorization-server"))
    if status != 200 or meta.get("issuer") != issuer:
        raise Unauthenticated(f"the authorization server metadata of {issuer} is missing or names another issuer")
    if "S256" not in meta.get("code_challenge_methods_supported", []):
        raise Unauthenticated("the authorization server does not support PKCE S256")
    return Server(resource, unquote(match[2]), unquote(match[3]), issuer, meta)


async def _client_id(out: Outbound, store: CredentialStore, server: Server) -> str:
    """The client registered at this server earlier, if the server still knows it; else a new registration."""
    known = store.client_id(server.issuer)
    if known is not None:
        # An unknown client gets 401 invalid_client (RFC 6749 §5.2) before the made-up code is even looked up.
        probe = {"grant_type": "authorization_code", "code": "probe", "client_id": known, "code_verifier": "x" * 43}
        status, _ = await fetch_json(out, "POST", server.endpoint("token_endpoint"), data=probe)
        if status != 401:
            return known
    document = {
        "client_name": CLIENT_NAME,
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    status, answer = await fetch_json(out, "POST", server.endpoint("registration_endpoint"), json=document)
    if status != 201 or not isinstance(answer.get("client_id"), str):
        raise Unauthenticated(f"the server refused to register this CLI: {answer.get('error_description', status)}")
    return str(answer["client_id"])


async def _authorize(
    out: Outbound, server: Server, client_id: str, scope: str, *, browser: bool, timeout: float
) -> dict[str, Any]:
    """Send the person to the authorization endpoint and redeem the code that comes back."""
    state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    loopback = Loopback(state)
    redirect = await loopback.start()
    try:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect,
            "scope": scope,
            "state": state,
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
            "resource": server.resource,
        }
        url = server.endpoint("authorization_endpoint") + "?" + urlencode(params)
        typer.echo("Open this URL in a browser to log in:", err=True)
        typer.echo(url, err=True)
        if browser:
            webbrowser.open(url)
        try:
            answer = await asyncio.wait_for(loopback.answer, timeout)
        except TimeoutError:
            raise Unauthenticated(f"no answer from the browser within {timeout:.0f} seconds") from None
    finally:
        await loopback.close()
    if "error" in answer:
        raise Unauthenticated(f"the server refused: {answer['error']}: {answer.get('error_description', '')}")
    if server.metadata.get("authorization_response_iss_parameter_supported") and answer.get("iss") != server.issuer:
        raise Unauthenticated("the answer did not come from the expected authorization server (RFC 9207)")
    form = {
        "grant_type": "authorization_code",
        "code": answer.get("code", ""),
        "redirect_uri": redirect,
        "client_id": client_id,
        "code_verifier": verifier,
        "resource": server.resource,
    }
    status, tokens = await fetch_json(out, "POST", server.endpoint("token_endpoint"), data=form)
    if status != 200:
        raise Unauthenticated(f"the code was not accepted: {tokens.get('error_description', status)}")
    return tokens


async def login_flow(
    settings: Settings,
    url: str,
    *,
    org: str | None = None,
    env: str | None = None,
    scope: str = SCOPE,
    browser: bool = True,
    timeout: float = 300.0,
    ca_bundle: Path | None = None,
) -> Context:
    """Log in to the environment at ``url``; the login context, now stored."""
    out = outbound(settings, ca_bundle)
    store = CredentialStore(settings.config_dir)
    server = await discover(out, url, org, env)
    client_id = await _client_id(out, store, server)
    tokens = await _authorize(out, server, client_id, scope, browser=browser, timeout=timeout)
    context = Context(
        server=server.issuer,
        resource=server.resource,
        organization=server.organization,
        environment=server.environment,
        client_id=client_id,
        token_endpoint=server.endpoint("token_endpoint"),
        revocation_endpoint=server.metadata.get("revocation_endpoint"),
        access_token="",
        refresh_token=None,
        expires_at=0.0,
        scope=scope,
    ).with_tokens(tokens)
    async with store.locked():
        store.save(context, client=(server.issuer, client_id))
    return context


async def logout_flow(settings: Settings, ca_bundle: Path | None = None) -> Context | None:
    """Revoke the current login's refresh token at the server (RFC 7009 §2.1) and forget the login."""
    store = CredentialStore(settings.config_dir)
    async with store.locked():
        context = store.context()
        if context is None:
            return None
        try:
            await revoke(outbound(settings, ca_bundle), context)
        finally:
            store.save(None)
    return context


async def revoke(out: Outbound, context: Context) -> None:
    """RFC 7009 §2.1: the refresh token (its family's access tokens go with it); 200 means done."""
    if context.revocation_endpoint is None or context.refresh_token is None:
        raise Unauthenticated("the server offers no revocation; the tokens stay valid until they expire")
    form = {"token": context.refresh_token, "token_type_hint": "refresh_token", "client_id": context.client_id}
    status, answer = await fetch_json(out, "POST", context.revocation_endpoint, data=form)
    if status != 200:
        raise Unauthenticated(f"the server did not revoke the token: {answer.get('error_description', status)}")


def claims(token: str) -> dict[str, Any]:
    """An access token's claims, decoded for display only (the server checks tokens; this never trusts them)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(context: Context, now: float | None = None) -> list[tuple[str, str]]:
    """What ``whoami`` shows: everything about the login but the tokens themselves."""
    left = context.expires_at - (now if now is not None else time.time())
    until = datetime.fromtimestamp(context.expires_at, UTC).isoformat(timespec="seconds")
    expiry = f"{until} (in {int(left // 60)} min)" if left > 0 else f"{until} (expired; refreshed on next use)"
    return [
        ("server", context.server),
        ("user", str(claims(context.access_token).get("sub", "unknown"))),
        ("environment", f"{context.organization}/{context.environment}"),
        ("endpoint", context.resource),
        ("scope", context.scope),
        ("access token expires", expiry),
        ("refresh token", "stored" if context.refresh_token else "none"),
    ]


def login(
    url: Annotated[str, typer.Argument(help="The server's URL, or an environment's MCP URL.")],
    org: Org = None,
    env: Env = None,
    scope: Annotated[str, typer.Option("--scope", help="The scopes to ask for.")] = SCOPE,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Print the URL; don't open a browser.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the browser.")] = 300.0,
    ca_bundle: CaBundle = None,
) -> None:
    """Log in to a testgate server in your browser; `testgate mcp serve` then bridges to it as you."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter("must be the server's http(s):// URL, or an environment's MCP URL", param_hint="URL")
    settings = Settings()
    context = run(
        login_flow(
            settings, url, org=org, env=env, scope=scope, browser=not no_browser, timeout=timeout, ca_bundle=ca_bundle
        )
    )
    typer.echo(f"Logged in to {context.server} ({context.organization}/{context.environment}, {context.scope}).")


def logout(ca_bundle: CaBundle = None) -> None:
    """Revoke this login's tokens at the server and forget them."""
    context = run(logout_flow(Settings(), ca_bundle))
    typer.echo("Not logged in." if context is None else f"Logged out of {context.server}; the tokens are revoked.")


def whoami() -> None:
    """Show the current login: server, user, environment, scope and token expiry (never the tokens)."""
    context = run(_current(Settings()))
    width = max(len(name) for name, _ in describe(context))
    for name, value in describe(context):
        typer.echo(f"{name + ':':<{width + 2}}{value}")


async def _current(settings: Settings) -> Context:
    context = CredentialStore(settings.config_dir).context()
    if context is None:
        raise Unauthenticated("not logged in; run `testgate login <url>`")
    return context
