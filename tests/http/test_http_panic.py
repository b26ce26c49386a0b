"""The panic guard: a crash anywhere is answered (500 problem / JSON-RPC -32603), logged, audited, and survived."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from testgate.mcp import guard
from testgate.operations import registry
from testgate.platform import tenancy
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow

MCP = "/organizations/acme/environments/dev/mcp"
LABELS = "/api/v1/organizations/acme/environments/dev/labels"
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


async def _panics(live: Any) -> list[AuditEventRow]:
    async with live.platform.db.session() as session:
        rows = await session.scalars(select(AuditEventRow).where(AuditEventRow.action == "http.panic"))
        return list(rows.all())


async def test_a_crash_in_a_rest_handler_is_a_500_problem_audited_and_the_next_request_is_served(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(ctx: Any, args: Any) -> Any:
        raise RuntimeError("secret internals: /etc/shadow")

    monkeypatch.setitem(registry._REGISTRY, "label.list", dataclasses.replace(registry.get("label.list"), handler=boom))
    async with live_server() as live:
        token = await live.token()
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "crash-rest-1", "User-Agent": "probe/1"}
        with structlog.testing.capture_logs() as logged:
            crashed = await live.http.get(LABELS, headers=headers)
        monkeypatch.undo()
        after = await live.http.get(LABELS, headers={"Authorization": f"Bearer {token}"})
        panics = await _panics(live)
        async with live.platform.db.session() as session:
            acme = await tenancy.organization_by_slug(session, "acme")

    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == "application/problem+json"
    assert crashed.json()["type"] == "https://testgate.dev/problems/internal-error"
    assert crashed.json()["request_id"] == "crash-rest-1"
    assert "secret" not in crashed.text
    assert "RuntimeError" not in crashed.text
    assert after.status_code == 200
    logged_crash = [e for e in logged if e["event"] == "unhandled error"]
    assert [(e["request_id"], type(e["exc_info"]).__name__) for e in logged_crash] == [("crash-rest-1", "RuntimeError")]
    [event] = panics
    assert event.organization_id == acme.id
    assert (event.outcome, event.transport, event.request_id) == ("error", "rest", "crash-rest-1")
    assert event.actor_type == "api_token"  # the caller had authenticated before the crash
    assert event.reason == "internal error (RuntimeError)"
    assert event.arguments == {"method": "GET", "path": LABELS}
    assert event.source_address == "127.0.0.1"
    assert event.time <= utcnow()


async def test_a_crash_on_an_mcp_endpoint_is_json_rpc_internal_error_audited_and_survived(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the verifier broke near 10.0.0.5")

    async with live_server() as live:
        token = await live.token()
        headers = {**JSON, "Authorization": f"Bearer {token}", "X-Request-ID": "crash-mcp-1"}
        monkeypatch.setattr(guard, "verify_bearer", broken)
        crashed = await live.http.post(MCP, json=INITIALIZE, headers=headers)
        monkeypatch.undo()
        after = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Authorization": f"Bearer {token}"})
        panics = await _panics(live)

    assert crashed.status_code == 500
    body = crashed.json()
    assert body["jsonrpc"] == "2.0"
    assert body["id"] is None
    assert body["error"]["code"] == -32603  # JSON-RPC 2.0 §5.1 internal error
    assert body["error"]["data"] == {"request_id": "crash-mcp-1"}
    assert "10.0.0.5" not in crashed.text
    assert after.status_code == 200
    assert "mcp-session-id" in after.headers
    [event] = panics
    assert (event.transport, event.request_id, event.actor_type) == ("mcp-http", "crash-mcp-1", "anonymous")
    assert event.reason == "internal error (RuntimeError)"


async def test_an_unreachable_database_is_a_503_to_retry_not_a_panic(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg raises ConnectionRefusedError while PostgreSQL is down: every call was a 500 "panic" with a
    # stack trace and testgate_panics_total rose, paging people as if the code had crashed.
    from testgate.http import metrics

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")

    async with live_server() as live:
        token = await live.token()
        before = metrics.PANICS._value.get()
        monkeypatch.setattr(guard, "verify_bearer", refused)
        with structlog.testing.capture_logs() as logged:
            mcp = await live.http.post(MCP, json=INITIALIZE, headers={**JSON, "Authorization": f"Bearer {token}"})
        monkeypatch.undo()
        monkeypatch.setitem(
            registry._REGISTRY, "label.list", dataclasses.replace(registry.get("label.list"), handler=refused)
        )
        rest = await live.http.get(LABELS, headers={"Authorization": f"Bearer {token}"})
        monkeypatch.undo()
        after = await live.http.get(LABELS, headers={"Authorization": f"Bearer {token}"})
        panics = await _panics(live)

    assert rest.status_code == 503, rest.text
    assert rest.headers["content-type"] == "application/problem+json"
    assert "database is unreachable" in rest.json()["detail"]
    assert mcp.status_code == 503
    assert mcp.json()["error"]["message"].startswith("the database is unreachable")
    assert "10.0.0.5" not in rest.text + mcp.text
    assert after.status_code == 200
    assert panics == []
    assert metrics.PANICS._value.get() == before
    assert [e["event"] for e in logged if e["log_level"] == "error"] == []
