"""Host and Origin validation (DNS rebinding) with the MCP transports' own rule, and CORS for allowed origins."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request

from testgate.config import Settings
from testgate.http.hosts import transport_security
from testgate.http.settings import HttpSettings

MCP = "/organizations/acme/environments/dev/mcp"
SSE = "/organizations/acme/environments/dev/sse"
MESSAGES = "/organizations/acme/environments/dev/messages/"
OPENAPI = "/api/v1/openapi.json"
APP = "https://app.example"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


# MCP transports, security warning: servers MUST validate the Origin header; Host guards against DNS rebinding.
async def test_a_foreign_host_is_refused_on_every_route_before_authentication(live_server: Any) -> None:
    async with live_server() as live:
        rest = await live.http.get(OPENAPI, headers={"Host": "rebound.example:8080"})
        mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Host": "rebound.example:8080"})
        # The legacy HTTP+SSE endpoints: refused by the front door too, before their Guard asks for a token.
        sse = await live.http.get(SSE, headers={"Host": "rebound.example:8080"})
        message = await live.http.post(f"{MESSAGES}?session_id=0", json=INITIALIZE, headers={"Host": "rebound.example"})
        probe = await live.http.get("/healthz", headers={"Host": "10.1.2.3:8080"})

    assert rest.status_code == 421
    assert rest.headers["content-type"] == "application/problem+json"
    assert rest.json()["type"] == "https://testgate.dev/problems/misdirected-request"
    assert mcp.status_code == 421
    assert mcp.json()["error"]["code"] == -32600
    assert (sse.status_code, message.status_code) == (421, 421)
    assert probe.status_code == 200  # orchestrators probe by pod address


async def test_a_foreign_origin_is_refused_and_a_public_url_is_accepted(live_server: Any) -> None:
    async with live_server(public_url="https://testgate.example.com") as live:
        foreign = await live.http.post("/oauth/login", data={}, headers={"Origin": "https://evil.example"})
        mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Origin": "https://evil.example"})
        public = await live.http.get(OPENAPI, headers={"Host": "testgate.example.com"})
        spelled = await live.http.get(OPENAPI, headers={"Host": "testgate.example.com:443"})
        same_site = await live.http.post(
            "/oauth/login", data={}, headers={"Host": "testgate.example.com", "Origin": "https://testgate.example.com"}
        )

    assert foreign.status_code == 403
    assert foreign.json()["type"] == "https://testgate.dev/problems/origin-not-allowed"
    assert mcp.status_code == 403
    assert mcp.json()["error"]["code"] == -32600
    assert (public.status_code, spelled.status_code) == (200, 200)
    assert same_site.status_code not in (403, 421)


async def test_a_form_page_accepts_the_null_origin_its_no_referrer_policy_causes(live_server: Any) -> None:
    # Fetch: under Referrer-Policy no-referrer a form POST's Origin is serialized as "null"; the forms carry
    # CSRF tokens. The API and MCP endpoints never accept it.
    async with live_server() as live:
        form = await live.http.post("/oauth/login", data={}, headers={"Origin": "null"})
        mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Origin": "null"})

    assert form.status_code not in (403, 421)
    assert mcp.status_code == 403


async def test_the_open_discovery_endpoints_answer_any_origin(live_server: Any) -> None:
    async with live_server() as live:
        response = await live.http.get(
            "/.well-known/oauth-authorization-server", headers={"Origin": "https://any.example"}
        )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, mcp-session-id, mcp-protocol-version",
    }


async def test_a_preflight_from_an_allowed_origin_is_answered_before_authentication(live_server: Any) -> None:
    async with live_server(http=HttpSettings(cors_origins=[APP])) as live:
        preflight = await live.http.options(MCP, headers=_preflight(APP))
        rest = await live.http.options("/api/v1/organizations/acme/environments/dev/workflows", headers=_preflight(APP))

    for response in (preflight, rest):
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == APP
        allowed = response.headers["access-control-allow-headers"].lower()
        assert {"authorization", "mcp-session-id", "mcp-protocol-version", "last-event-id"} <= set(allowed.split(", "))
        assert "access-control-allow-credentials" not in response.headers


async def test_a_browser_mcp_client_of_an_allowed_origin_can_read_its_session_id(live_server: Any) -> None:
    async with live_server(http=HttpSettings(cors_origins=[APP])) as live:
        token = await live.token()
        headers = {**JSON, "Origin": APP, "Authorization": f"Bearer {token}"}
        response = await live.http.post(MCP, json=INITIALIZE, headers=headers)

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    assert "mcp-session-id" in response.headers["access-control-expose-headers"].lower()
    assert "mcp-session-id" in response.headers


@pytest.mark.parametrize("cors", [[], [APP]], ids=["cors-off", "other-origin-allowed"])
async def test_a_preflight_from_another_origin_is_refused(live_server: Any, cors: list[str]) -> None:
    async with live_server(http=HttpSettings(cors_origins=cors)) as live:
        response = await live.http.options(MCP, headers=_preflight("https://evil.example"))

    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


CASES = [
    ("127.0.0.1:8080", None),
    ("localhost:1234", "http://localhost:1234"),
    ("[::1]:9", "https://[::1]:9"),
    ("evil.example", None),
    ("127.0.0.1:8080", "http://evil.example"),
    ("127.0.0.1:8080", "null"),
    ("testgate.example.com", "https://testgate.example.com"),
    ("testgate.example.com", "http://testgate.example.com"),
    ("internal:8080", APP),
    ("internal:9090", None),
]


@pytest.mark.parametrize(("host", "origin"), CASES)
async def test_the_front_door_decides_exactly_as_the_mcp_sdk_validator_with_the_same_rule(
    live_server: Any, host: str, origin: str | None
) -> None:
    settings = Settings(
        public_url="https://testgate.example.com",
        http=HttpSettings(allowed_hosts=["internal:8080"], cors_origins=[APP]),
    )
    headers = {"Host": host, **({"Origin": origin} if origin else {})}
    sdk = TransportSecurityMiddleware(transport_security(settings))
    scope = {"type": "http", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    expected = await sdk.validate_request(Request(scope), is_post=False)

    async with live_server(public_url=settings.public_url, http=settings.http) as live:
        response = await live.http.get(OPENAPI, headers=headers)

    assert response.status_code == (200 if expected is None else expected.status_code)


async def test_the_remembered_verdicts_are_the_validators_and_stay_bounded() -> None:
    """``HostCheck`` remembers the SDK validator's verdict per (Host, Origin): a second request with the same
    pair gets the same answer, an exempt page's pair is not another path's, and the memo stays bounded."""
    from testgate.http.hosts import HostCheck

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    check = HostCheck(app, security=transport_security(Settings(host="127.0.0.1", port=8080)))

    async def status(path: str, host: str, origin: str | None = None) -> int:
        headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "state": {}}
        await check(scope, None, send)
        return int(sent[0]["status"])

    mcp = "/organizations/acme/environments/dev/mcp"
    for _ in range(2):  # judged, then remembered: the same answers
        assert await status(mcp, "127.0.0.1:8080") == 200
        assert await status(mcp, "evil.example:8080") == 421
        assert await status(mcp, "127.0.0.1:8080", "http://evil.example") == 403
        assert await status("/ui/workflows", "127.0.0.1:8080", "null") == 200  # a form page's no-referrer Origin
        assert await status(mcp, "127.0.0.1:8080", "null") == 403  # ... which is not the MCP endpoint's
    for n in range(HostCheck.MEMO_SIZE + 10):
        assert await status(mcp, f"evil{n}.example") == 421
    assert len(check._verdicts) <= HostCheck.MEMO_SIZE
