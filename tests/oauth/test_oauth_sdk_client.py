"""A real third-party OAuth client, the MCP SDK's ``OAuthClientProvider``, against a live testgate.

Discovery (401 -> RFC 9728 metadata -> RFC 8414 metadata), registration (RFC 7591, or a CIMD client id),
PKCE, sign-in and consent in headless Chromium, the token exchange, an MCP tool call with the access token,
a refresh, and refresh-token reuse detection (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from testgate.oauth.settings import OAuthSettings

pytestmark = pytest.mark.slow


class Memory:
    """The SDK's TokenStorage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Agent:
    """An MCP client application: the SDK provider, with the person's browser behind its redirect handler."""

    def __init__(self, live: Any, person: Any, callback: str, client_metadata_url: str | None = None) -> None:
        self.storage = Memory()
        self.person = person
        self.callback_url = ""
        metadata = OAuthClientMetadata(
            redirect_uris=[AnyUrl(callback)],
            client_name="SDK agent",
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method="none",
        )
        self.provider = OAuthClientProvider(
            live.url(),
            metadata,
            self.storage,
            redirect_handler=self._redirect,
            callback_handler=self._callback,
            client_metadata_url=client_metadata_url,
        )
        self.url = live.url()

    async def _redirect(self, url: str) -> None:
        self.callback_url = await self.person.authorize(url)

    async def _callback(self) -> AuthorizationCodeResult:
        answer = {k: v[0] for k, v in parse_qs(urlsplit(self.callback_url).query).items()}
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Client]:
        timeout = httpx2.Timeout(30, read=60)
        async with (
            httpx2.AsyncClient(auth=self.provider, timeout=timeout) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,
        ):
            yield client


async def call_and_refresh(agent: Agent, live: Any) -> None:
    """A tool call (full flow on the first 401), then another after the access token is due (a refresh)."""
    async with agent.session() as mcp:
        result = await mcp.call_tool("list_workflows", {})
        assert not result.is_error, result
    first = agent.storage.tokens
    assert first is not None
    assert first.refresh_token is not None
    assert first.refresh_token.startswith("tgr_")
    agent.provider.context.token_expiry_time = time.time() - 1
    async with agent.session() as mcp:
        assert not (await mcp.call_tool("list_workflows", {})).is_error
    second = agent.storage.tokens
    assert second is not None
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token

    # RFC 9700 §4.14.2: the rotated-out refresh token, presented again, revokes the family.
    async with httpx.AsyncClient(base_url=live.base) as raw:
        client_id = agent.storage.client.client_id if agent.storage.client else ""
        form = {"grant_type": "refresh_token", "refresh_token": first.refresh_token, "client_id": client_id}
        reuse = await raw.post("/oauth/token", data=form)
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        form["refresh_token"] = second.refresh_token or ""
        assert (await raw.post("/oauth/token", data=form)).json()["error"] == "invalid_grant"
        init = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Authorization": f"Bearer {second.access_token}", "Accept": "application/json, text/event-stream"}
        denied = await raw.post(live.url(), json=init, headers=headers)
        assert denied.status_code == 401


async def test_the_sdk_client_registers_dynamically_and_completes_the_flow(
    live_server: Any, person: Any, callback: Any
) -> None:
    # No grace window: the reuse below comes within seconds of the rotation.
    async with live_server(OAuthSettings(refresh_grace=0)) as live:
        await live.add_user()
        agent = Agent(live, person, callback.url)
        await call_and_refresh(agent, live)
        assert agent.storage.client is not None
        assert agent.storage.client.client_id.startswith("tgc_")
        assert "SDK agent" in person.consent_pages[0]
        assert "testgate:read" in person.consent_pages[0]


async def test_the_sdk_client_uses_a_client_id_metadata_document(
    live_server: Any, person: Any, documents: Any, test_ca: Any, callback: Any
) -> None:
    client_id = documents.publish("/sdk-agent.json", [callback.url], client_name="SDK agent (CIMD)")
    # Tests only: the document server is on loopback with a test CA.
    async with live_server(OAuthSettings(allow_private_cimd=True, ca_bundle=test_ca.bundle, refresh_grace=0)) as live:
        await live.add_user()
        agent = Agent(live, person, callback.url, client_metadata_url=client_id)
        await call_and_refresh(agent, live)
        assert agent.storage.client is not None
        assert agent.storage.client.client_id == client_id
        assert "SDK agent (CIMD)" in person.consent_pages[0]
        assert client_id in person.consent_pages[0]
