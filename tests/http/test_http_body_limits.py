"""Body size limits, enforced before authentication: problem+json on REST, a JSON-RPC error on MCP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tests.serving import serving

from testgate.http.limits import BodyLimit
from testgate.http.settings import HttpSettings

MCP = "/organizations/acme/environments/dev/mcp"
API = "/api/v1/organizations/acme/environments/dev"
PROBLEM = "application/problem+json"
SMALL = HttpSettings(max_body_bytes=2048)


async def test_an_oversized_rest_body_is_a_413_problem_before_authentication(live_server: Any) -> None:
    async with live_server(http=SMALL, max_upload_bytes=1024) as live:
        body = b"x" * 8192
        registration = await live.http.post(
            "/oauth/register", content=body, headers={"Content-Type": "application/json"}
        )
        upload = await live.http.post(f"{API}/workflows", content=body, headers={"Content-Type": "application/yaml"})

    for response, limit in ((registration, 2048), (upload, 2048)):
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        assert problem["type"] == "https://testgate.dev/problems/limit-exceeded"
        assert problem["limit"] == limit
        assert problem["request_id"] == response.headers["x-request-id"]
    # No token was sent: the size is refused before anyone is asked who the caller is.
    assert "www-authenticate" not in upload.headers


async def test_an_oversized_mcp_body_is_a_json_rpc_error(live_server: Any) -> None:
    async with live_server(http=SMALL, max_upload_bytes=1024) as live:
        message = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "' + b"x" * 8192 + b'"}}'
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        response = await live.http.post(MCP, content=message, headers=headers)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None
    assert body["error"]["code"] == -32600
    assert body["error"]["data"]["request_id"] == response.headers["x-request-id"]


async def test_a_chunked_body_is_cut_off_when_it_grows_past_the_limit(live_server: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"y" * 1024

    async with live_server(http=SMALL) as live:
        response = await live.http.post(
            "/oauth/register", content=chunks(), headers={"Content-Type": "application/json"}
        )
        after = await live.http.get("/healthz")

    assert "content-length" not in response.request.headers  # streamed: only counting can catch it
    assert response.status_code == 413
    assert response.json()["type"] == "https://testgate.dev/problems/limit-exceeded"
    assert after.status_code == 200


async def test_a_body_within_the_limit_reaches_the_application(live_server: Any) -> None:
    async with live_server(http=SMALL) as live:
        response = await live.http.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:3000/cb"]})

    assert response.status_code != 413


async def test_a_body_longer_than_its_declared_length_never_reaches_the_application() -> None:
    """A declared Content-Length within the limit is not counted again: the server delivers exactly that
    many bytes (RFC 9112 §6.3) and parses what follows as the next request. Checked against the server
    testgate runs on, with a raw socket that lies about its body."""
    received: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            received.append(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limited = BodyLimit(app, limit=64, uploads=64)
    async with serving(limited) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = f"POST /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 10\r\n\r\n".encode()
        writer.write(head + b"a" * 10 + b"b" * 8192)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()

    assert answer.startswith(b"HTTP/1.1 200")
    assert b"".join(received) == b"a" * 10  # the rest was never a body: the server took it for a request
