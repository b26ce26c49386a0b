"""Dynamic client registration (RFC 7591) accepts only redirect URIs that RFC 6749 and RFC 8252 allow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from testgate.platform.context import Platform
from testgate.store.oauth import OAuthClient


async def register(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/oauth/register", json={"client_name": "Agent", **body})


# RFC 7591 §3.2.1: a public client gets an id and no secret.
async def test_a_public_native_client_registers_without_a_secret(client: httpx.AsyncClient, platform: Platform) -> None:
    response = await register(client, redirect_uris=["http://127.0.0.1/callback"], token_endpoint_auth_method="none")
    assert response.status_code == 201
    body = response.json()
    assert body["client_id"].startswith("tgc_")
    assert "client_secret" not in body
    assert body["redirect_uris"] == ["http://127.0.0.1/callback"]
    assert body["grant_types"] == ["authorization_code"]


# RFC 7591 §2: token_endpoint_auth_method defaults to client_secret_basic; the secret is stored hashed.
async def test_a_confidential_client_gets_a_secret_that_is_stored_only_as_a_hash(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    body = (await register(client, redirect_uris=["https://agent.example/cb"])).json()
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret"].startswith("tgcs_")
    async with platform.db.session() as session:
        row = (await session.scalars(select(OAuthClient))).one()
    assert row.secret_hash is not None
    assert body["client_secret"] not in str(row.document)
    assert row.secret_hash != body["client_secret"]


# RFC 8252 §7.1-7.3, §8.3 and RFC 6749 §3.1.2: what a redirect URI may be.
@pytest.mark.parametrize(
    "uri",
    [
        "https://agent.example/callback",
        "http://127.0.0.1:8765/callback",
        "http://[::1]/callback",
        "http://localhost:3030/callback",
        "com.example.agent:/oauth2redirect",
    ],
)
async def test_acceptable_redirect_uris_are_registered(client: httpx.AsyncClient, uri: str) -> None:
    assert (await register(client, redirect_uris=[uri], token_endpoint_auth_method="none")).status_code == 201


@pytest.mark.parametrize(
    "uri",
    [
        "http://agent.example/callback",
        "https://agent.example/callback#fragment",
        "https://user:pw@agent.example/callback",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "myapp:/callback",
        "/relative/callback",
        "https:///no-host",
        "https://agent.example/with space",
    ],
)
async def test_dangerous_redirect_uris_are_refused(client: httpx.AsyncClient, uri: str) -> None:
    response = await register(client, redirect_uris=[uri], token_endpoint_auth_method="none")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_redirect_uri"


# RFC 7591 §3.2.2 invalid_client_metadata.
@pytest.mark.parametrize(
    "body",
    [
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]},
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit", "authorization_code"]},
        {"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]},
        {"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"},
        {"redirect_uris": ["https://a.example/cb"], "scope": "testgate:admin"},
        {"redirect_uris": ["https://a.example/cb"], "client_uri": "javascript:alert(1)"},
        {"redirect_uris": ["https://a.example/cb"], "client_name": 42},
    ],
)
async def test_invalid_client_metadata_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/oauth/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


async def test_a_registration_must_be_a_json_object_of_bounded_size(client: httpx.AsyncClient) -> None:
    assert (await client.post("/oauth/register", content=b"[]", headers={"Content-Type": "application/json"})).json()[
        "error"
    ] == "invalid_client_metadata"
    huge = {"redirect_uris": ["https://a.example/cb"], "client_name": "x" * 20000}
    assert (await client.post("/oauth/register", json=huge)).status_code == 400
    missing = await client.post("/oauth/register", json={"client_name": "no redirect"})
    assert missing.json()["error"] == "invalid_redirect_uri"


# RFC 7591 §3.2.2: a request the server cannot use is invalid_client_metadata, never a 500.
async def test_a_registration_nested_past_the_parsers_depth_is_invalid_client_metadata(
    client: httpx.AsyncClient,
) -> None:
    body = '{"redirect_uris":' + "[" * 1000 + "]" * 1000 + "}"
    response = await client.post("/oauth/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
