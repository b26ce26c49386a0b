"""Forwarded client addresses, believed only from trusted proxies (``http.trusted_proxies``, addresses or CIDRs).

When the peer is a trusted proxy, the client is the rightmost address of the configured header
(``X-Forwarded-For``, or RFC 7239 ``Forwarded: for=``) that is not itself a trusted proxy: proxies append
the address they saw, so entries left of the last trusted hop may be forged by the client and are ignored.
The ASGI ``scope["client"]`` is rewritten, so the audit source address, the rate-limit key and the access
log all see the client; ``X-Forwarded-Proto`` (or ``proto=``) sets the scheme. From any other peer the
headers are ignored. Run uvicorn with ``proxy_headers=False`` so this is the only place that decides.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 7239 §4: forwarded-pair = token "=" value; the node may be quoted, bracketed (IPv6) and carry a port.
_PAIR = re.compile(r'(?i)\b(for|proto)\s*=\s*("[^"]*"|[^;,\s]*)')


def _address(node: str) -> str | None:
    """The IP address of a forwarded node (``1.2.3.4``, ``"[2001:db8::1]:443"``, ``1.2.3.4:80``), else None."""
    node = node.strip().strip('"')
    if node.startswith("["):
        node = node[1 : node.find("]")] if "]" in node else node
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None  # "unknown" or an obfuscated identifier (RFC 7239 §6.3): not an address


def parse_forwarded(value: str) -> tuple[list[str], str | None]:
    """The ``for=`` nodes of an RFC 7239 ``Forwarded`` value (in order) and the last ``proto=``."""
    nodes: list[str] = []
    proto = None
    for element in value.split(","):
        for key, raw in _PAIR.findall(element):
            if key.lower() == "for":
                nodes.append(raw)
            else:
                proto = raw.strip('"').lower()
    return nodes, proto


class Forwarded:
    """Rewrite ``scope["client"]`` (and the scheme) from forwarded headers set by trusted proxies."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[str], header: str) -> None:
        self.app, self.header = app, header
        self.trusted: list[Network] = [ipaddress.ip_network(n, strict=False) for n in trusted]

    def is_trusted(self, address: str | None) -> bool:
        """``address`` is one of the configured proxies."""
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def client_of(self, hops: list[str]) -> str | None:
        """The rightmost hop that is not a trusted proxy (the client as the first trusted proxy saw it)."""
        for node in reversed(hops):
            address = _address(node)
            if address is None:
                return None  # an unparseable hop: believe nothing further left
            if not self.is_trusted(address):
                return address
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and self.is_trusted(client[0]):
            headers = Headers(scope=scope)
            if self.header == "forwarded":
                hops, proto = parse_forwarded(", ".join(headers.getlist("forwarded")))
            else:
                hops = [h for v in headers.getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
                proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower() or None
            address = self.client_of(hops)
            if address is not None:
                scope["client"] = (address, 0)
            if proto in ("http", "https"):
                scope["scheme"] = proto
        await self.app(scope, receive, send)
