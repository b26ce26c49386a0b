"""Discovery: RFC 8414 and RFC 9728 metadata, and the challenges resource servers send."""

from __future__ import annotations

from typing import Any

import httpx

from testgate.access.principal import Permission, Principal, Role
from testgate.config import Settings
from testgate.oauth import metadata, scopes

BASE = "http://127.0.0.1:8080"


# RFC 8414 §2-3 and the MCP authorization spec (S256 only, CIMD, RFC 9207 iss).
async def test_the_authorization_server_metadata_describes_this_server(client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        document = response.json()
        # RFC 8414 §3.3: the issuer is the URL the well-known segment was added to, exactly.
        assert document["issuer"] == BASE
        assert document["authorization_endpoint"] == f"{BASE}/oauth/authorize"
        assert document["token_endpoint"] == f"{BASE}/oauth/token"
        assert document["registration_endpoint"] == f"{BASE}/oauth/register"
        assert document["revocation_endpoint"] == f"{BASE}/oauth/revoke"
        assert document["jwks_uri"] == f"{BASE}/oauth/jwks.json"
        assert document["code_challenge_methods_supported"] == ["S256"]
        assert document["response_types_supported"] == ["code"]
        assert document["grant_types_supported"] == ["authorization_code", "refresh_token"]
        assert "none" in document["token_endpoint_auth_methods_supported"]
        assert document["client_id_metadata_document_supported"] is True
        assert document["authorization_response_iss_parameter_supported"] is True
        assert document["scopes_supported"] == ["testgate:read", "testgate:run", "testgate:write"]


# RFC 9728 §3.1: metadata of each environment's MCP URL, at the path-inserted well-known URI.
async def test_each_environment_publishes_protected_resource_metadata(client: httpx.AsyncClient) -> None:
    path = "/.well-known/oauth-protected-resource/organizations/acme/environments/dev/mcp"
    document = (await client.get(path)).json()
    assert document["resource"] == f"{BASE}/organizations/acme/environments/dev/mcp"
    assert document["authorization_servers"] == [BASE]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["scopes_supported"] == list(scopes.SUPPORTED)
    root = (await client.get("/.well-known/oauth-protected-resource")).json()
    assert root["resource"] == f"{BASE}/organizations/acme/environments/dev/mcp"
    rest = (await client.get("/.well-known/oauth-protected-resource/api/v1/organizations/acme/environments/dev")).json()
    assert rest["resource"] == f"{BASE}/api/v1/organizations/acme/environments/dev"


# Browser-based MCP clients discover and exchange tokens cross-origin; no endpoint here reads a cookie.
async def test_the_json_endpoints_allow_any_origin_without_credentials(client: httpx.AsyncClient) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    preflight = await client.options("/oauth/token", headers=headers)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    error = await client.post("/oauth/token", data={}, headers={"Origin": "https://app.example"})
    assert error.headers["access-control-allow-origin"] == "*"
    assert error.json()["error"] == "invalid_request"


def test_the_401_challenge_names_the_metadata_and_the_scope(settings: Settings) -> None:
    # RFC 9728 §5.1 resource_metadata; RFC 6750 §3 no error code without credentials; MCP scope selection.
    challenge = metadata.www_authenticate(settings, "acme", "dev")
    assert challenge == (
        'Bearer realm="testgate", '
        f'resource_metadata="{BASE}/.well-known/oauth-protected-resource/organizations/acme/environments/dev/mcp", '
        'scope="testgate:read"'
    )
    bad = metadata.www_authenticate(settings, "acme", "dev", error="invalid_token", description='say "hi"\n')
    assert 'error="invalid_token", error_description="say hi"' in bad


# RFC 6750 §3.1 insufficient_scope + MCP step-up: name the scope only when the scope, not the role, denied.
def test_insufficient_scope_is_named_only_when_the_scope_capped_the_permission(settings: Settings) -> None:
    capped = Principal("oauth", "j", "a", "org", Role.MEMBER, {"env": Permission.WRITE}, cap=Permission.READ)
    assert scopes.scope_needed(capped, "env", Permission.RUN) == "testgate:run"
    weak_role = Principal("oauth", "j", "a", "org", Role.MEMBER, {"env": Permission.READ}, cap=Permission.WRITE)
    assert scopes.scope_needed(weak_role, "env", Permission.RUN) is None
    assert scopes.scope_needed(capped, "env", Permission.ADMIN) is None
    api_token = Principal("api_token", "t", "a", "org", Role.MEMBER, {"env": Permission.READ})
    assert scopes.scope_needed(api_token, "env", Permission.RUN) is None
    # From a PermissionDenied's details, as dispatch raises it: {"required": "run", "held": "read"}.
    assert scopes.scope_for_denial(capped, {"required": "run", "held": "read"}) == "testgate:run"
    assert scopes.scope_for_denial(weak_role, {"required": "run", "held": "read"}) is None
    assert scopes.scope_for_denial(capped, {"required": "admin", "held": "read"}) is None
    assert scopes.scope_for_denial(api_token, {"required": "run"}) is None
    challenge = metadata.insufficient_scope(settings, "acme", "dev", "testgate:run")
    assert challenge.startswith('Bearer realm="testgate", error="insufficient_scope"')
    assert challenge.endswith('scope="testgate:run"')


def test_only_this_servers_environment_urls_are_resources(settings: Settings) -> None:
    assert metadata.parse_resource(settings, f"{BASE}/organizations/acme/environments/dev/mcp") == metadata.Target(
        "acme", "dev", "mcp"
    )
    assert metadata.parse_resource(settings, f"{BASE}/api/v1/organizations/acme/environments/dev") is not None
    for other in (
        f"{BASE}/organizations/acme/environments/dev/mcp?x=1",
        f"{BASE}/organizations/acme/environments/dev/mcp#f",
        f"{BASE}/organizations/acme/environments/dev/sse",
        f"{BASE}/organizations/acme/environments/a%2Fb/mcp/../mcp",
        f"{BASE}:80/organizations/acme/environments/dev/mcp",
        "https://127.0.0.1:8080/organizations/acme/environments/dev/mcp",
    ):
        assert metadata.parse_resource(settings, other) is None, other


async def test_registration_can_be_switched_off(settings: Settings, client: httpx.AsyncClient, app: Any) -> None:
    settings.oauth.dynamic_registration = False
    document = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert "registration_endpoint" not in document
    response = await client.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
    assert response.status_code == 404
