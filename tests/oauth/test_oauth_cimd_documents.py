"""Client ID metadata documents served over https from loopback: validated, cached and used for a full flow.

Tests only: ``allow_private_cimd`` lets the server fetch from loopback, and the test CA is trusted through
``ca_bundle``; the default refuses both (``test_oauth_cimd_ssrf``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from testgate.http.outbound import Outbound
from testgate.oauth.cimd_fetch import Fetcher
from testgate.oauth.settings import OAuthSettings

CALLBACK = "http://127.0.0.1:3000/callback"


def resolver(table: dict[str, list[str]], calls: list[str]) -> Callable[..., Any]:
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return table[host]

    return resolve


@pytest.fixture
def oauth_settings(test_ca: Any) -> OAuthSettings:
    # Tests only: the document server is on loopback, with a certificate from the test CA.
    return OAuthSettings(allow_private_cimd=True, ca_bundle=test_ca.bundle)


# CIMD §4: no redirects are followed (a redirect could lead anywhere, including inside the network).
async def test_a_redirecting_document_is_refused(flow: Any, documents: Any) -> None:
    response = await flow.authorize(flow.params(documents.url("/redirect.json")))
    assert response.status_code == 400
    assert "redirects" in response.text


async def test_an_oversized_document_is_refused(flow: Any, documents: Any) -> None:
    response = await flow.authorize(flow.params(documents.url("/big.json")))
    assert response.status_code == 400
    assert "larger than" in response.text


async def test_a_document_nested_past_the_parsers_depth_is_refused_not_a_500(flow: Any, documents: Any) -> None:
    response = await flow.authorize(flow.params(documents.url("/deep.json")))
    assert response.status_code == 400
    assert "not JSON" in response.text


# CIMD §4.1: the document's client_id MUST equal its URL; it MUST NOT carry a secret.
async def test_a_document_naming_another_client_id_or_holding_a_secret_is_refused(flow: Any, documents: Any) -> None:
    documents.publish("/other.json", [CALLBACK])
    documents.documents["/other.json"]["client_id"] = documents.url("/impostor.json")
    response = await flow.authorize(flow.params(documents.url("/other.json")))
    assert response.status_code == 400
    assert "not its own URL" in response.text
    documents.publish("/secret.json", [CALLBACK], client_secret="s3cret")
    response = await flow.authorize(flow.params(documents.url("/secret.json")))
    assert response.status_code == 400
    assert "secret" in response.text


async def test_a_document_with_a_non_loopback_http_redirect_uri_is_refused(flow: Any, documents: Any) -> None:
    client_id = documents.publish("/http.json", ["http://agent.example/callback"])
    response = await flow.authorize(flow.params(client_id, redirect_uri="http://agent.example/callback"))
    assert response.status_code == 400
    assert "invalid_client" in response.text


async def test_a_document_server_without_a_trusted_certificate_is_refused(
    flow: Any, documents: Any, app: FastAPI
) -> None:
    app.state.oauth_fetcher.outbound = Outbound()
    client_id = documents.publish("/client.json", [CALLBACK])
    response = await flow.authorize(flow.params(client_id))
    assert response.status_code == 400
    assert "ConnectError" in response.text


# DNS rebinding: the host is resolved once and the connection goes to that address, TLS still naming the host.
async def test_the_fetch_connects_to_the_address_it_vetted(documents: Any, test_ca: Any) -> None:
    client_id = documents.publish("/client.json", [CALLBACK])
    calls: list[str] = []
    fetcher = Fetcher(
        Outbound(ca_bundle=test_ca.bundle), allow_private=True, resolver=resolver({"localhost": ["127.0.0.1"]}, calls)
    )
    assert (await fetcher.fetch(client_id))["client_id"] == client_id
    assert calls == ["localhost"]


async def test_a_metadata_document_client_completes_the_flow_and_is_named_on_the_consent_page(
    flow: Any, documents: Any, make_user: Any
) -> None:
    await make_user()
    client_id = documents.publish("/client.json", ["http://127.0.0.1/callback"])
    params = flow.params(client_id)
    page = await flow.login(await flow.authorize(params), "ada@example.com")
    consent = await flow.http.get("/oauth/" + page.headers["location"])
    assert "Metadata document agent" in consent.text
    assert client_id in consent.text
    code = await flow.code(client_id)
    response = await flow.exchange(client_id, code)
    assert response.status_code == 200, response.text
    # Cached: a changed document is not fetched again within the TTL.
    documents.documents["/client.json"]["client_name"] = "Renamed"
    consent = await flow.authorize(flow.params(client_id, prompt="consent"))
    assert "Metadata document agent" in consent.text
