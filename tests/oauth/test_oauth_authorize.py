"""The authorization endpoint refuses what OAuth 2.1, RFC 8252, RFC 8707 and the MCP spec forbid."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from testgate.access.principal import Permission

from .conftest import query_of

CALLBACK = "http://127.0.0.1:3000/callback"


def redirected_error(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith("http://127.0.0.1:3000/callback?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def registered(flow: Any, **metadata: Any) -> str:
    return str((await flow.register(**metadata))["client_id"])


# OAuth 2.1 §4.1.1 / MCP authorization "Authorization Code Protection": PKCE is REQUIRED.
async def test_a_request_without_a_code_challenge_is_refused_back_to_the_client(flow: Any) -> None:
    client_id = await registered(flow)
    params = flow.params(client_id, code_challenge=None, code_challenge_method=None)
    error = redirected_error(await flow.authorize(params))
    assert error["error"] == "invalid_request"
    assert "PKCE" in error["error_description"]
    # RFC 6749 §4.1.2.1 passes state back; RFC 9207 §2 adds iss to error responses too.
    assert error["state"] == flow.state
    assert error["iss"] == "http://127.0.0.1:8080"


# MCP authorization: clients MUST use S256; the plain method is refused (RFC 7636 §4.2 allows it, OAuth 2.1 not).
async def test_the_plain_code_challenge_method_is_refused(flow: Any) -> None:
    client_id = await registered(flow)
    params = flow.params(client_id, code_challenge_method="plain")
    assert redirected_error(await flow.authorize(params))["error"] == "invalid_request"
    # RFC 7636 §4.3: a missing method means plain, so it is refused as well.
    params = flow.params(client_id, code_challenge_method=None)
    assert redirected_error(await flow.authorize(params))["error"] == "invalid_request"


# RFC 6749 §4.1.2.1: an unknown client is never redirected to; the person is told.
async def test_an_unknown_client_gets_an_error_page_not_a_redirect(flow: Any) -> None:
    response = await flow.authorize(flow.params("tgc_unknown"))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "invalid_client" in response.text


# RFC 6749 §3.1.2.3 / OAuth 2.1 §2.3.1: redirect URIs are compared exactly; a mismatch is never redirected to.
async def test_a_redirect_uri_that_was_not_registered_is_refused_without_redirecting(flow: Any) -> None:
    client_id = await registered(flow, redirect_uris=["https://agent.example/callback"])
    for attempt in (
        "https://agent.example/callback/evil",
        "https://agent.example/callback?x=1",
        "https://agent.example:8443/callback",
        "https://evil.example/callback",
    ):
        response = await flow.authorize(flow.params(client_id, redirect_uri=attempt))
        assert response.status_code == 400, attempt
        assert "location" not in response.headers


# RFC 8252 §7.3: a loopback redirect URI matches on any port, for native apps' ephemeral ports.
async def test_a_loopback_redirect_uri_may_use_any_port(flow: Any) -> None:
    client_id = await registered(flow, redirect_uris=["http://127.0.0.1/callback", "http://[::1]:1/callback"])
    for uri in ("http://127.0.0.1:49152/callback", "http://[::1]:61000/callback"):
        response = await flow.authorize(flow.params(client_id, redirect_uri=uri))
        assert response.status_code == 200, uri
        assert 'action="login"' in response.text
    # ... but only the port: another path, or another loopback host, is a mismatch.
    for uri in ("http://127.0.0.1:49152/other", "http://localhost:49152/callback"):
        response = await flow.authorize(flow.params(client_id, redirect_uri=uri))
        assert response.status_code == 400, uri


# RFC 8252 §7.3 leniency is for loopback only: an https redirect URI keeps its exact port.
async def test_port_leniency_does_not_apply_to_non_loopback_redirect_uris(flow: Any) -> None:
    client_id = await registered(flow, redirect_uris=["https://agent.example:9443/cb"])
    response = await flow.authorize(flow.params(client_id, redirect_uri="https://agent.example:9444/cb"))
    assert response.status_code == 400
    assert "location" not in response.headers


# RFC 8707 §2 + MCP authorization "Resource Parameter": the resource is required and must be ours.
async def test_the_resource_parameter_is_required_and_must_be_an_environment_of_this_server(flow: Any) -> None:
    client_id = await registered(flow)
    assert redirected_error(await flow.authorize(flow.params(client_id, resource=None)))["error"] == "invalid_request"
    for foreign in (
        "https://other.example/organizations/acme/environments/dev/mcp",
        "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp/",
        "http://127.0.0.1:8080/organizations/acme/environments/nope/mcp",
    ):
        error = redirected_error(await flow.authorize(flow.params(client_id, resource=foreign)))
        assert error["error"] == "invalid_target", foreign


# RFC 6749 §3.1: request parameters MUST NOT be included more than once.
async def test_a_repeated_parameter_is_refused(flow: Any, client: httpx.AsyncClient) -> None:
    client_id = await registered(flow)
    query = str(httpx.QueryParams(flow.params(client_id))) + f"&client_id={client_id}"
    response = await client.get(f"/oauth/authorize?{query}")
    assert response.status_code == 400
    assert "repeated" in response.text


# RFC 6749 §4.1.2.1 invalid_scope; admin is not a scope an OAuth client can ask for.
async def test_an_unknown_or_admin_scope_is_refused(flow: Any) -> None:
    client_id = await registered(flow)
    for scope in ("testgate:admin", "openid profile"):
        assert redirected_error(await flow.authorize(flow.params(client_id, scope=scope)))["error"] == "invalid_scope"


# RFC 6749 §3.3: scopes nest (read < run < write); a client registered for write may ask for less, and a
# person's earlier consent to write covers a later request for read.
async def test_a_client_may_ask_for_less_than_it_registered_for(flow: Any, make_user: Any) -> None:
    await make_user(grants={"dev": Permission.WRITE})
    client_id = str((await flow.register(scope="testgate:write"))["client_id"])

    tokens = await flow.tokens(client_id, scope="testgate:write")
    narrower = await flow.authorize(flow.params(client_id, scope="testgate:read"))
    wider = await flow.authorize(flow.params(client_id, scope="testgate:read testgate:write"))

    assert tokens["scope"] == "testgate:write"
    assert narrower.status_code == 302, narrower.text  # no consent page: writing covers reading
    assert "code" in query_of(narrower.headers["location"])
    assert wider.status_code == 302
    assert "code" in query_of(wider.headers["location"])


# RFC 9700 §4.11.2: anyone can register a client, so its web redirect URI is untrusted; an error found before
# the person did anything is shown here, never sent on, or the server is an open redirector to any site.
@pytest.mark.parametrize(
    "params",
    [
        {"response_type": None},  # no other parameter needed: the bare client id used to redirect
        {"code_challenge": None},
        {"scope": "testgate:admin"},
        {"prompt": "none"},  # not signed in: login_required
    ],
)
async def test_an_early_error_is_not_sent_on_to_a_web_redirect_uri(flow: Any, params: dict[str, Any]) -> None:
    client_id = await registered(flow, redirect_uris=["https://evil.example/landing"])

    response = await flow.authorize(flow.params(client_id, redirect_uri="https://evil.example/landing", **params))

    assert response.status_code == 400, response.headers.get("location")
    assert "location" not in response.headers
    assert "evil.example" in response.text  # the person is told where the request came from


# RFC 6749 §4.1.2.1: response_type other than code.
async def test_the_implicit_grant_is_not_offered(flow: Any) -> None:
    client_id = await registered(flow)
    error = redirected_error(await flow.authorize(flow.params(client_id, response_type="token")))
    assert error["error"] == "unsupported_response_type"


async def test_the_pages_cannot_be_framed_and_run_no_script(flow: Any) -> None:
    client_id = await registered(flow)
    page = await flow.authorize(flow.params(client_id))
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self' http://127.0.0.1:3000" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    assert "style=" not in page.text
