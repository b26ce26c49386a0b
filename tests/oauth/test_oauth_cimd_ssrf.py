"""Client ID metadata documents are fetched without SSRF (CIMD draft §6, RFC 9700 §4.10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from testgate.http.outbound import Outbound
from testgate.oauth.cimd_fetch import Fetcher, FetchRefused, forbidden

CALLBACK = "http://127.0.0.1:3000/callback"


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Callable[..., Any]:
    """DNS at the true edge: a fixed table (no query leaves the machine)."""

    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


# CIMD §6 SSRF: loopback, private, link-local (cloud metadata), unique-local, and their IPv6-embedded forms.
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.8.8",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "198.18.0.1",
    ],
)
async def test_a_client_id_host_resolving_to_an_internal_address_is_refused(address: str) -> None:
    fetcher = Fetcher(Outbound(), resolver=resolver({"agent.example": [address]}))
    with pytest.raises(FetchRefused, match="forbidden address"):
        await fetcher.fetch("https://agent.example/client.json")


# DNS answers mixing a public and a private address are refused: the attacker picks which one is used.
async def test_a_host_with_one_internal_address_among_public_ones_is_refused() -> None:
    fetcher = Fetcher(Outbound(), resolver=resolver({"agent.example": ["93.184.215.14", "169.254.169.254"]}))
    with pytest.raises(FetchRefused, match="link-local"):
        await fetcher.fetch("https://agent.example/client.json")


async def test_allowing_private_addresses_still_refuses_unspecified_and_multicast() -> None:
    for address in ("0.0.0.0", "ff02::1", "::ffff:0.0.0.0"):
        fetcher = Fetcher(Outbound(), allow_private=True, resolver=resolver({"agent.example": [address]}))
        with pytest.raises(FetchRefused, match="forbidden address"):
            await fetcher.fetch("https://agent.example/client.json")
        assert "unspecified or multicast" in (forbidden(address, allow_private=True) or "")


# CIMD §3: the client id is an https URL with a path, and no fragment, credentials or dot segments.
@pytest.mark.parametrize(
    "url",
    [
        "http://agent.example/client.json",
        "https://agent.example",
        "https://agent.example/",
        "https://agent.example/client.json#x",
        "https://user:pw@agent.example/client.json",
        "https://agent.example/a/../client.json",
        "https://agent.example/./client.json",
        "file:///etc/passwd",
    ],
)
async def test_a_malformed_client_id_url_is_refused_before_any_lookup(url: str) -> None:
    calls: list[str] = []
    fetcher = Fetcher(Outbound(), resolver=resolver({}, calls))
    with pytest.raises(FetchRefused):
        await fetcher.fetch(url)
    assert calls == []


# The authorization endpoint: a client that can't be fetched safely is invalid_client, never redirected to.
@pytest.mark.parametrize(
    "client_id",
    [
        "https://127.0.0.1:1/client.json",
        "https://localhost:1/client.json",
        "https://169.254.169.254/latest/meta-data/client.json",
        "https://[::ffff:169.254.169.254]/client.json",
    ],
)
async def test_authorize_refuses_an_ssrf_client_id_with_invalid_client(flow: Any, client_id: str) -> None:
    response = await flow.authorize(flow.params(client_id))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "invalid_client" in response.text
    assert "forbidden address" in response.text
    # What the host resolves to stays in the server's log: the page must not map internal names.
    for address in ("127.0.0.1", "169.254", "::1", "loopback address", "link-local address"):
        assert address not in response.text.replace(client_id, "")


# RFC 6749 §5.2: at the token endpoint the same client id is invalid_client (401).
async def test_the_token_endpoint_refuses_an_ssrf_client_id_with_invalid_client(client: httpx.AsyncClient) -> None:
    data = {"grant_type": "authorization_code", "code": "x", "client_id": "https://169.254.169.254/c.json"}
    response = await client.post("/oauth/token", data=data)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_authorize_uses_the_apps_resolver_and_refuses_metadata_service_names(flow: Any, app: FastAPI) -> None:
    app.state.oauth_fetcher.resolver = resolver({"metadata.google.internal": ["169.254.169.254"]})
    response = await flow.authorize(flow.params("https://metadata.google.internal/computeMetadata/v1/x"))
    assert response.status_code == 400
    assert "link-local" in response.text
