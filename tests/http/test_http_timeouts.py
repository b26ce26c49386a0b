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


# --- the layer alone, with and without ``Observe`` outside it (which keeps the response's progress) ------


def _layers(app: Any, seconds: float, observed: bool) -> Any:
    from testgate.http.observe import Observe
    from testgate.http.timeouts import Timeout

    timed = Timeout(app, seconds=seconds)
    return Observe(timed) if observed else timed


async def _drive(app: Any, path: str = "/api/v1/x") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "state": {}, "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("observed", [True, False])
async def test_a_response_that_started_in_time_may_stream_past_the_deadline(observed: bool) -> None:
    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await anyio.sleep(0.1)  # 0.4 s in all, twice the timeout
            await send({"type": "http.response.body", "body": b"tick", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    sent = await _drive(_layers(streaming, 0.2, observed))
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"tick" * 4


@pytest.mark.parametrize("observed", [True, False])
async def test_a_stuck_request_is_answered_504_within_a_tick_of_its_deadline(observed: bool) -> None:
    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    began = anyio.current_time()
    with anyio.fail_after(5):
        sent = await _drive(_layers(stuck, 0.3, observed))
    took = anyio.current_time() - began
    assert sent[0]["status"] == 504
    assert 0.3 <= took < 0.3 + 0.03 + 0.25  # a tick is a tenth of the timeout; the rest is this machine's slack


async def test_a_cancellation_that_is_not_the_deadlines_goes_on() -> None:
    """Only the timeout's own cancellation becomes a 504 (asyncio.timeout's rule): a client gone, a server
    shutting down, still cancel the request."""
    entered = anyio.Event()

    async def waiting(scope: Any, receive: Any, send: Any) -> None:
        entered.set()
        await anyio.sleep_forever()

    app = _layers(waiting, 30, True)
    with anyio.CancelScope() as outer:

        async def cancel_soon() -> None:
            await entered.wait()
            outer.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_soon)
            sent = await _drive(app)
            raise AssertionError(f"the request was not cancelled: {sent}")
    assert outer.cancelled_caught
