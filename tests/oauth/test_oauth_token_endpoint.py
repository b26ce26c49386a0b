"""The token endpoint: PKCE verification, single-use codes, replay revocation, client authentication."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from testgate.access.verifier import verify_bearer
from testgate.errors import Unauthenticated
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.oauth import AuthorizationCode

MCP = "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp"


def error_of(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.json()["error"])


@pytest.fixture
async def client_id(flow: Any, make_user: Any) -> str:
    await make_user()
    return str((await flow.register())["client_id"])


# RFC 7636 §4.6: the verifier must hash to the challenge; RFC 6749 §5.2 invalid_grant.
async def test_a_wrong_code_verifier_is_refused_and_burns_the_code(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    right = flow.verifier
    assert error_of(await flow.exchange(client_id, code, code_verifier="x" * 50)) == "invalid_grant"
    # The failed attempt consumed the code: the right verifier is now too late (no brute force of verifiers).
    assert error_of(await flow.exchange(client_id, code, code_verifier=right)) == "invalid_grant"


# RFC 7636 §4.1 / OAuth 2.1 §4.1.3: a code issued with a challenge needs a verifier.
async def test_a_missing_code_verifier_is_refused(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    assert error_of(await flow.exchange(client_id, code, code_verifier=None)) == "invalid_grant"


# RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a code is single-use; a second use revokes what the first issued.
async def test_a_replayed_code_is_refused_and_revokes_the_tokens_it_issued(
    flow: Any, client_id: str, platform: Platform
) -> None:
    code = await flow.code(client_id)
    first = await flow.exchange(client_id, code)
    assert first.status_code == 200
    tokens = first.json()
    assert await verify_bearer(platform, tokens["access_token"], source=None, resource=MCP)
    assert error_of(await flow.exchange(client_id, code)) == "invalid_grant"
    with pytest.raises(Unauthenticated, match="revoked"):
        await verify_bearer(platform, tokens["access_token"], source=None, resource=MCP)
    assert error_of(await flow.refresh(client_id, tokens["refresh_token"])) == "invalid_grant"


# RFC 6749 §4.1.2: codes are short-lived (60 s here).
async def test_an_expired_code_is_refused(flow: Any, client_id: str, platform: Platform) -> None:
    code = await flow.code(client_id)
    async with platform.db.session() as session:
        await session.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert error_of(await flow.exchange(client_id, code)) == "invalid_grant"


# RFC 6749 §4.1.3: redirect_uri must be identical to the authorization request's.
async def test_a_different_redirect_uri_at_the_token_endpoint_is_refused(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    response = await flow.exchange(client_id, code, redirect_uri="http://127.0.0.1:3001/callback")
    assert error_of(response) == "invalid_grant"


# RFC 8707 §2.2: the resource at the token endpoint can't switch environments.
async def test_a_different_resource_at_the_token_endpoint_is_refused(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    other = "http://127.0.0.1:8080/organizations/acme/environments/prod/mcp"
    assert error_of(await flow.exchange(client_id, code, resource=other)) == "invalid_target"


# RFC 6749 §4.1.3: the code is bound to the client it was issued to.
async def test_a_code_presented_by_another_client_is_refused(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    thief = (await flow.register(client_name="Thief"))["client_id"]
    assert error_of(await flow.exchange(thief, code)) == "invalid_grant"


# RFC 6749 §5.2: an unknown client is invalid_client with 401.
async def test_an_unknown_client_is_invalid_client(flow: Any, client_id: str) -> None:
    code = await flow.code(client_id)
    assert error_of(await flow.exchange("tgc_nobody", code), 401) == "invalid_client"


# RFC 6749 §3.2: the token request is form-encoded, and no parameter repeats.
async def test_a_json_or_repeated_token_request_is_refused(client: httpx.AsyncClient, client_id: str) -> None:
    response = await client.post("/oauth/token", json={"grant_type": "authorization_code", "client_id": client_id})
    assert error_of(response) == "invalid_request"
    body = f"grant_type=authorization_code&client_id={client_id}&code=a&code=b"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert error_of(await client.post("/oauth/token", content=body, headers=headers)) == "invalid_request"


async def test_an_unsupported_grant_type_is_refused(client: httpx.AsyncClient, client_id: str) -> None:
    data = {"grant_type": "password", "client_id": client_id, "username": "a", "password": "b"}
    assert error_of(await client.post("/oauth/token", data=data)) == "unsupported_grant_type"


# RFC 6749 §2.3.1: a confidential client authenticates with its registered method and secret.
async def test_a_confidential_client_must_present_its_secret(flow: Any, make_user: Any) -> None:
    await make_user()
    registered = await flow.register(token_endpoint_auth_method="client_secret_basic")
    client_id, secret = registered["client_id"], registered["client_secret"]
    assert registered["client_secret_expires_at"] == 0
    code = await flow.code(client_id)
    assert error_of(await flow.exchange(client_id, code), 401) == "invalid_client"
    code = await flow.code(client_id)
    basic = base64.b64encode(f"{client_id}:wrong".encode()).decode()
    response = await flow.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:3000/callback",
            "code_verifier": flow.verifier,
            "resource": MCP,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert error_of(response, 401) == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    code = await flow.code(client_id)
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    response = await flow.http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "http://127.0.0.1:3000/callback",
            "code_verifier": flow.verifier,
            "resource": MCP,
        },
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
