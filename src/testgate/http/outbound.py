"""The one way testgate makes outbound HTTP requests: proxies from the environment, a CA bundle, no redirects.

``Outbound.from_environ`` reads ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY`` (either case) once,
at the edge; the client it builds does not read the environment again (``trust_env=False``), so the proxy
decision made here is the one httpx follows.

A pinned request (``pinned_url``) goes to an address the caller already vetted: the URL names the IP, the
Host header and TLS SNI/certificate check name the original host, so no second DNS lookup happens (DNS
rebinding). Through a proxy that cannot hold: an HTTP CONNECT tunnel verifies the certificate against the
name in the URL, so proxied requests name the host and the proxy resolves it itself. Callers still refuse
private addresses by resolving first, but a proxy may resolve differently; operators who need the pinning
guarantee exempt those hosts with ``NO_PROXY`` or give the proxy an egress policy of its own.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from testgate.config_checks import SettingError

PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")  # what httpx can go through


@dataclass(frozen=True)
class Outbound:
    """Proxy and trust configuration for outbound requests."""

    proxies: Mapping[str, str] = field(default_factory=dict)  # scheme ("http", "https") -> proxy URL
    no_proxy: str = ""
    ca_bundle: Path | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, ca_bundle: Path | None = None) -> Outbound:
        """Read the conventional proxy variables (lower case wins, as in curl and httpx)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            value = (env.get(name.lower()) or env.get(name.upper()) or "").strip()
            # curl's convention: a proxy without a scheme is an HTTP proxy (httpx refuses one without).
            return f"http://{value}" if value and name != "no_proxy" and "://" not in value else value

        fallback = get("all_proxy")
        proxies = {scheme: get(f"{scheme}_proxy") or fallback for scheme in ("http", "https")}
        # Only what will be used: ALL_PROXY is a fallback, often socks:// in desktop sessions, unused here.
        for scheme, value in proxies.items():
            parts = urlsplit(value)
            if value and (parts.scheme not in PROXY_SCHEMES or not parts.hostname):
                name = f"{scheme.upper()}_PROXY" if get(f"{scheme}_proxy") else "ALL_PROXY"
                schemes = ", ".join(f"{known}://" for known in PROXY_SCHEMES)
                raise SettingError(name, f"must be a proxy URL: {schemes}host:port")
        return cls({k: v for k, v in proxies.items() if v}, get("no_proxy"), ca_bundle)

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through, or None (no proxy, or the host is in NO_PROXY)."""
        parts = urlsplit(url)
        proxy = self.proxies.get(parts.scheme)
        if not proxy or not parts.hostname:
            return None
        if bypassed(parts.hostname, self.no_proxy):
            return None
        return proxy

    def ssl_context(self) -> ssl.SSLContext:
        """The system trust store plus ``ca_bundle``; hostname checking always on."""
        context = ssl.create_default_context()
        if self.ca_bundle is not None:
            try:
                context.load_verify_locations(cafile=str(self.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM certificates"
                raise SettingError("the CA bundle", f"cannot use {self.ca_bundle}: {why}") from None
        return context

    def client(self, url: str, *, timeout: float) -> httpx.AsyncClient:
        """A client for requests to ``url``: its proxy (if any), this trust, no redirects, no environment reads."""
        proxy = self.proxy_for(url)
        return httpx.AsyncClient(
            proxy=proxy,
            verify=self.ssl_context(),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
        )


def bypassed(host: str, no_proxy: str) -> bool:
    """``host`` is exempt under NO_PROXY: ``*``, the name or a parent domain (``.corp``, ``corp``), an IP or CIDR."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        name = entry.lstrip(".").strip("[]")
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return True
        if "/" in name and _is_ip(host):
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                continue
    return False


@dataclass(frozen=True)
class Pinned:
    """A request target bound to one vetted address."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


def pinned_url(url: str, address: str) -> Pinned:
    """``url`` rewritten to connect to ``address`` while Host and TLS still name the original host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    ip = ipaddress.ip_address(address)
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    host_header = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": host} if parts.scheme == "https" and not _is_ip(host) else {}
    return Pinned(urlunsplit(parts._replace(netloc=netloc)), {"Host": host_header}, extensions)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
