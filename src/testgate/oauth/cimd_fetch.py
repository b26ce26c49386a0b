"""Fetching client ID metadata documents without becoming an SSRF proxy (CIMD draft §6, RFC 9700 §4.10).

The client id is an attacker-chosen URL, so the fetch MUST: accept only ``https`` URLs with a path and no
credentials, fragment or dot segments; resolve the host itself and refuse loopback, private (RFC 1918),
shared (RFC 6598), link-local (169.254/16, cloud metadata), unique-local, unspecified, multicast and
reserved addresses, including their IPv4-mapped and NAT64 IPv6 forms; connect to the vetted address (no
second lookup); follow no redirect; stop after ``max_bytes`` and ``timeout``.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import structlog

from testgate import jsontext
from testgate.http.outbound import Outbound, pinned_url

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


log = structlog.get_logger("testgate.oauth")


class FetchRefused(Exception):
    """The document could not be fetched safely; ``str()`` says why, for the client's error description."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped ``::ffff:a.b.c.d`` or NAT64 ``64:ff9b::a.b.c.d``)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden(address: str, *, allow_private: bool) -> str | None:
    """Why ``address`` must not be fetched from, or None if it may."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    inner = embedded_ipv4(ip)
    if inner is not None:
        return forbidden(str(inner), allow_private=allow_private)
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is an unspecified or multicast address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if not ip.is_global:
        return f"{ip} is a private or reserved address"
    return None


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an acceptable client-id URL; ``FetchRefused`` otherwise (CIMD §3)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise FetchRefused("a client id URL must use https")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise FetchRefused("a client id URL must name a host and carry no credentials")
    if parts.fragment or "#" in url:
        raise FetchRefused("a client id URL must not have a fragment")
    segments = parts.path.split("/")
    if parts.path in ("", "/") or "." in segments or ".." in segments:
        raise FetchRefused("a client id URL must have a path without dot segments")
    try:
        port = parts.port or 443
    except ValueError:
        raise FetchRefused("the client id URL has an invalid port") from None
    return parts.hostname, port


@dataclass
class Fetcher:
    """Fetches one JSON document per call under the rules above."""

    outbound: Outbound
    allow_private: bool = False
    max_bytes: int = 64 * 1024
    timeout: float = 5.0
    resolver: Resolver = system_resolver

    async def fetch(self, url: str) -> dict[str, Any]:
        """The JSON object at ``url``; ``FetchRefused`` for anything unsafe, unreachable or malformed."""
        host, port = check_url(url)
        try:
            with anyio.fail_after(self.timeout):
                address = await self._vetted_address(host, port)
                body = await self._get(url, address)
        except TimeoutError:
            raise FetchRefused("fetching the client metadata document timed out") from None
        try:
            document = jsontext.loads(body)
        except ValueError:
            raise FetchRefused("the client metadata document is not JSON") from None
        if not isinstance(document, dict):
            raise FetchRefused("the client metadata document is not a JSON object")
        return document

    async def _vetted_address(self, host: str, port: int) -> str:
        """Resolve once; every address must be allowed (an attacker may return a mix), the first is used."""
        try:
            addresses = await self.resolver(host, port)
        except OSError:
            raise FetchRefused(f"the client id host {host!r} does not resolve") from None
        if not addresses:
            raise FetchRefused(f"the client id host {host!r} does not resolve")
        for address in addresses:
            reason = forbidden(address, allow_private=self.allow_private)
            if reason is not None:
                # The address stays in the server's log: told to the caller, refusals would answer what
                # internal names resolve to (a map of the network) for anyone who asks.
                log.warning("client id host refused", host=host, reason=reason)
                raise FetchRefused(
                    "the client id host resolves to a forbidden address (one testgate never fetches from: "
                    "loopback, private, link-local and the like)"
                )
        return addresses[0]

    async def _get(self, url: str, address: str) -> bytes:
        proxied = self.outbound.proxy_for(url) is not None
        target = pinned_url(url, address)
        request_url = url if proxied else target.url
        headers = {"Accept": "application/json", **({} if proxied else target.headers)}
        extensions = {} if proxied else target.extensions
        try:
            async with (
                self.outbound.client(url, timeout=self.timeout) as client,
                client.stream("GET", request_url, headers=headers, extensions=extensions) as response,
            ):
                if response.is_redirect:
                    raise FetchRefused("the client metadata document URL redirects; redirects are not followed")
                if response.status_code != 200:
                    raise FetchRefused(f"the client metadata document answered HTTP {response.status_code}")
                return await self._bounded(response)
        except httpx.HTTPError as exc:
            raise FetchRefused(f"the client metadata document could not be fetched: {type(exc).__name__}") from None

    async def _bounded(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchRefused(f"the client metadata document is larger than {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchRefused(f"the client metadata document is larger than {self.max_bytes} bytes")
        return bytes(body)
