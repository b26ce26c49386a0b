"""Outbound requests go through HTTP_PROXY / HTTPS_PROXY (CONNECT), bypass it for NO_PROXY, trust the CA bundle.

A real forward proxy (HTTP absolute-form and CONNECT tunnels, written here on asyncio streams) stands between
testgate's outbound client factory (``testgate.http.outbound``) and a local origin, and records what it relays.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from testgate.config import Settings
from testgate.http.outbound import Outbound
from testgate.oauth.context import make_fetcher
from testgate.oauth.settings import OAuthSettings

DOCUMENT = {"client_id": "placeholder", "client_name": "Proxied agent", "redirect_uris": ["http://127.0.0.1:1/cb"]}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _head(reader: asyncio.StreamReader) -> tuple[str, list[bytes]]:
    """The request line and the raw header lines of an HTTP/1.1 request."""
    request_line = (await reader.readline()).decode("latin-1").strip()
    headers = []
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        headers.append(line)
    return request_line, headers


@dataclass
class Proxy:
    """A forward proxy: ``GET http://host/...`` relayed in origin form, ``CONNECT host:port`` tunnelled."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, headers = await _head(reader)
        method, target, version = request_line.split(" ")
        self.seen.append((method, target))
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
        else:
            parts = httpx.URL(target)
            up_reader, up_writer = await asyncio.open_connection(parts.host, parts.port)
            kept = [h for h in headers if not h.lower().startswith((b"proxy-", b"connection:"))]
            origin_form = parts.raw_path.decode()
            up_writer.write(f"{method} {origin_form} {version}\r\n".encode() + b"".join(kept))
            up_writer.write(b"Connection: close\r\n\r\n")
            await up_writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny origin: answers every request with the client metadata document."""
    await _head(reader)
    body = json.dumps(DOCUMENT).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    relay = Proxy()
    server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
    relay.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield relay
        server.close()


@pytest.fixture
async def origins(certificate: tuple[Path, Path]) -> AsyncIterator[dict[str, int]]:
    """A plain and a TLS origin on loopback; yields their ports."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    plain = await asyncio.start_server(_origin, "127.0.0.1", 0)
    secure = await asyncio.start_server(_origin, "127.0.0.1", 0, ssl=tls)
    async with plain, secure:
        yield {"http": plain.sockets[0].getsockname()[1], "https": secure.sockets[0].getsockname()[1]}
        plain.close()
        secure.close()


async def _get(outbound: Outbound, url: str) -> Any:
    async with outbound.client(url, timeout=5) as client:
        response = await client.get(url)
    return response.json()


async def test_plain_http_goes_through_http_proxy(proxy: Proxy, origins: dict[str, int]) -> None:
    url = f"http://127.0.0.1:{origins['http']}/client.json"

    document = await _get(Outbound.from_environ({"HTTP_PROXY": proxy.url}), url)

    assert document == DOCUMENT
    assert proxy.seen == [("GET", url)]


async def test_https_is_tunnelled_with_connect_and_verified_against_the_ca_bundle(
    proxy: Proxy, origins: dict[str, int], certificate: tuple[Path, Path]
) -> None:
    url = f"https://localhost:{origins['https']}/client.json"
    outbound = Outbound.from_environ({"https_proxy": proxy.url}, ca_bundle=certificate[0])

    document = await _get(outbound, url)
    with pytest.raises(httpx.ConnectError):
        await _get(Outbound.from_environ({"https_proxy": proxy.url}), url)  # without the bundle: not trusted

    assert document == DOCUMENT
    assert proxy.seen[0] == ("CONNECT", f"localhost:{origins['https']}")


async def test_no_proxy_hosts_are_reached_directly(proxy: Proxy, origins: dict[str, int]) -> None:
    environ = {"HTTP_PROXY": proxy.url, "NO_PROXY": "localhost,.internal.example"}

    document = await _get(Outbound.from_environ(environ), f"http://localhost:{origins['http']}/client.json")
    proxied = await _get(Outbound.from_environ(environ), f"http://127.0.0.1:{origins['http']}/client.json")

    assert document == proxied == DOCUMENT
    assert [target for _, target in proxy.seen] == [f"http://127.0.0.1:{origins['http']}/client.json"]


async def test_the_oauth_client_metadata_fetcher_reads_the_proxy_from_the_environment(
    proxy: Proxy, origins: dict[str, int], certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.upper(), raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    settings = Settings(oauth=OAuthSettings(allow_private_cimd=True, ca_bundle=certificate[0]))
    url = f"https://localhost:{origins['https']}/client.json"

    document = await make_fetcher(settings).fetch(url)

    assert document == DOCUMENT
    assert proxy.seen == [("CONNECT", f"localhost:{origins['https']}")]


@pytest.mark.parametrize("value", ["garbage://x", "ftp://proxy:21", "http://"])
def test_a_proxy_variable_that_is_no_proxy_url_is_an_invalid_setting(value: str) -> None:
    # httpx raised "Unknown scheme for proxy URL" from inside the first request: a traceback, exit 1.
    from testgate.config_checks import SettingError
    from testgate.http.outbound import Outbound

    with pytest.raises(SettingError, match="must be a proxy URL") as refused:
        Outbound.from_environ({"HTTPS_PROXY": value})
    assert refused.value.variable == "HTTPS_PROXY"
    # Without a scheme it is an HTTP proxy, as curl takes it (httpx refused it).
    assert Outbound.from_environ({"https_proxy": "proxy.corp:3128"}).proxies == {"https": "http://proxy.corp:3128"}


def test_a_ca_bundle_that_cannot_be_read_names_the_file(tmp_path: Path) -> None:
    from testgate.config_checks import SettingError
    from testgate.http.outbound import Outbound

    for bundle, why in ((tmp_path / "missing.pem", "No such file or directory"), (tmp_path, "")):
        with pytest.raises(SettingError, match=f"cannot use {bundle}: {why}"):
            Outbound(ca_bundle=bundle).ssl_context()


def test_an_all_proxy_that_is_never_used_is_not_checked() -> None:
    # Desktop sessions set all_proxy=socks://…; with HTTP(S)_PROXY set it is never used, and it stopped serve.
    from testgate.config_checks import SettingError
    from testgate.http.outbound import Outbound

    environ = {"http_proxy": "http://p:3128", "https_proxy": "http://p:3128", "all_proxy": "socks://p:1080/"}
    assert Outbound.from_environ(environ).proxies == {"http": "http://p:3128", "https": "http://p:3128"}
    with pytest.raises(SettingError) as refused:
        Outbound.from_environ({"all_proxy": "socks://p:1080/"})  # now it would be used: named as ALL_PROXY
    assert refused.value.variable == "ALL_PROXY"
