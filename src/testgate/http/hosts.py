"""Host and Origin validation (DNS rebinding, cross-site requests): one rule for REST, OAuth, console and MCP.

``transport_security(settings)`` builds the rule as the SDK's ``TransportSecuritySettings``, and
``HostCheck`` applies the SDK's own validator with it to every route, the MCP transports' included (they
sit behind it and do not check the same headers again). Allowed:

- Host: this server's names. Bound to loopback, the loopback names with any port (a browser on this
  machine); otherwise the bind address and port. Plus the host of ``public_url`` and each of
  ``http.public_urls``, and each ``http.allowed_hosts`` entry.
- Origin (when present; same-origin requests may omit it): those names as http(s) origins, plus
  ``http.cors_origins``, the browser origins allowed cross-origin.

Exempt: probes skip the Host check (orchestrators address them by pod IP); the discovery and token
endpoints any origin may call skip the Origin check (``testgate.oauth.routes`` answers them with CORS ``*``),
and so does ``Origin: null`` on the HTML form pages (see ``_origin_exempt``).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.config import Settings
from testgate.http import paths, replies
from testgate.http.headers import header

_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")  # noqa: S104 - names, not a bind
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _public(urls: Iterable[str], hosts: set[str], origins: set[str]) -> None:
    for url in urls:
        parts = urlsplit(url)
        if not parts.hostname:
            continue
        hosts.add(parts.netloc)
        if parts.port is None and parts.scheme in _DEFAULT_PORTS:
            hosts.add(f"{parts.netloc}:{_DEFAULT_PORTS[parts.scheme]}")  # a client may spell the default port
        origins.add(f"{parts.scheme}://{parts.netloc}")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The Host and Origin values this server accepts (MCP spec, transports: servers MUST validate Origin)."""
    hosts: set[str] = set(settings.http.allowed_hosts)
    origins: set[str] = set(settings.http.cors_origins)
    if settings.host in _LOOPBACK:
        for name in ("127.0.0.1", "localhost", "[::1]"):
            hosts |= {name, f"{name}:*"}
            origins |= {f"http://{name}", f"http://{name}:*", f"https://{name}", f"https://{name}:*"}
    else:
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        hosts |= {host, f"{host}:{settings.port}"}
        origins |= {f"http://{host}:{settings.port}", f"https://{host}:{settings.port}"}
    _public([u for u in (settings.public_url, *settings.http.public_urls) if u], hosts, origins)
    return TransportSecuritySettings(allowed_hosts=sorted(hosts), allowed_origins=sorted(origins))


def _origin_exempt(scope: Scope) -> bool:
    """Endpoints open to any origin, and ``Origin: null`` on the HTML form pages.

    The pages send ``Referrer-Policy: no-referrer``, under which browsers serialize the Origin of a form
    POST as ``null`` (Fetch, "append a request Origin header"); each form carries its own CSRF token.
    """
    path = scope["path"]
    if paths.is_open_origin(path):
        return True
    return paths.is_page(path) and (b"origin", b"null") in scope["headers"]


class HostCheck:
    """421 for a Host that is not this server's, 403 for an Origin that is not allowed; before CORS and auth.

    The SDK's validator decides from the Host and Origin values alone, so its verdict is remembered per
    pair of values (``MEMO_SIZE`` pairs, all forgotten at once when full): a request whose pair was
    judged before is not judged again.
    """

    MEMO_SIZE = 1024

    def __init__(self, app: ASGIApp, *, security: TransportSecuritySettings) -> None:
        self.app = app
        self.validator = TransportSecurityMiddleware(security)
        self._verdicts: dict[tuple[str | None, str | None], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in paths.PROBES:
            await self.app(scope, receive, send)
            return
        exempt = _origin_exempt(scope)
        pair = (header(scope, b"host"), None if exempt else header(scope, b"origin"))
        status = self._verdicts.get(pair)
        if status is None:
            status = await self._judge(scope, exempt)
            if len(self._verdicts) >= self.MEMO_SIZE:
                self._verdicts.clear()
            self._verdicts[pair] = status
        if status == 200:
            await self.app(scope, receive, send)
            return
        if status == 421:
            detail = "the Host header does not name this server"
            reply = replies.refusal(scope, 421, "misdirected-request", "Misdirected request", detail)
        else:
            detail = "requests from this Origin are not allowed"
            reply = replies.refusal(scope, 403, "origin-not-allowed", "Origin not allowed", detail)
        await reply(scope, receive, send)

    async def _judge(self, scope: Scope, exempt: bool) -> int:
        """The SDK validator's verdict on the request's Host and Origin: 200, or its refusal's status."""
        checked = scope
        if exempt:
            checked = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"origin"]}
        refused = await self.validator.validate_request(Request(checked), is_post=False)
        return 200 if refused is None else refused.status_code
