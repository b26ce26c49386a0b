"""Request timeouts: 504 (problem on REST, JSON-RPC on MCP) when no response starts in time; streams are exempt."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import pytest

from testgate.errors import NotFound
from testgate.http.settings import HttpSettings
from testgate.mcp import guard
from testgate.operations import registry

MCP = "/organizations/acme/environments/dev/mcp"
API = "/api/v1/organizations/acme/environments/dev"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}
QUICK = HttpSettings(request_timeout=0.5)


async def _stuck(*args: Any, **kwargs: Any) -> Any:
    await anyio.sleep_forever()


async def test_a_rest_request_without_a_response_in_time_is_a_504_problem(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        registry._REGISTRY, "label.list", dataclasses.replace(registry.get("label.list"), handler=_stuck)
    )
    async with live_server(http=QUICK) as live:
        token = await live.token()
        with anyio.fail_after(10):
            response = await live.http.get(f"{API}/labels", headers={"Authorization": f"Bearer {token}"})
        healthy = await live.http.get("/healthz")

    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://testgate.dev/problems/timeout"
    assert healthy.status_code == 200


async def test_an_mcp_request_without_a_response_in_time_is_a_json_rpc_error(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guard, "visible", _stuck)
    async with live_server(http=QUICK) as live:
        token = await live.token()
        with anyio.fail_after(10):
            response = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Authorization": f"Bearer {token}"})

    assert response.status_code == 504
    assert response.json()["error"]["code"] == -32000


async def test_the_rest_long_poll_keeps_its_own_bound(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(ctx: Any, args: Any) -> Any:
        await anyio.sleep(1.5)  # three times the request timeout
        raise NotFound("nothing to wait for")

    monkeypatch.setitem(
        registry._REGISTRY, "execution.wait", dataclasses.replace(registry.get("execution.wait"), handler=slow)
    )
    async with live_server(http=QUICK) as live:
        token = await live.token()
        with anyio.fail_after(10):
            response = await live.http.post(
                f"{API}/wait", json={"ids": ["x"], "timeout": 5}, headers={"Authorization": f"Bearer {token}"}
            )

    assert response.status_code == 404
