"""Answers held at the door: a read's answer leaves only once its audit event is committed, and never if
the event cannot be written (``testgate.mcp.hold``), in both protocol eras."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import select
from starlette.types import Message

from testgate.errors import AuditFailure
from testgate.mcp.hold import Door
from testgate.store.audit import AuditEventRow

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
FLOW_NAME = "quarterly-payroll-export"  # what the withheld answer would have carried
DEFINITION = f"kind: TestWorkflow\nmetadata: {{name: {FLOW_NAME}}}\nspec: {{steps: [{{name: s, shell: 'true'}}]}}\n"
EARLY_WINDOW = 1.0  # how long a held event waits to see whether the answer got out without it


@pytest.fixture(autouse=True)
def early_commit(live: Any) -> None:
    """Reads hand their events to the door as on PostgreSQL (``AuditWriter.early_commit``); this server's
    store is an SQLite file, where they commit before dispatch returns."""
    live.platform.audit.early_commit = True


@pytest.fixture
async def raw(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base, timeout=20) as client:
        yield client


async def _events(live: Any, action: str) -> list[AuditEventRow]:
    async with live.platform.db.session() as session:
        return list(await session.scalars(select(AuditEventRow).where(AuditEventRow.action == action)))


async def test_a_reads_answer_leaves_only_once_its_audit_event_is_committed(
    live: Any, connect: Any, admin: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The read's event is held back for a while: an answer that got out meanwhile would reach the client
    # before its event was stored (what dispatch promises is the opposite: committed before the answer).
    writer = live.platform.audit
    record = writer.record
    answered = anyio.Event()
    early: list[bool] = []

    async def held(event: Any) -> None:
        if event.action == "workflow.list":
            with anyio.move_on_after(EARLY_WINDOW):
                await answered.wait()
            early.append(answered.is_set())
        await record(event)

    monkeypatch.setattr(writer, "record", held)
    async with connect(admin, mode=mode) as client:
        result = await client.call_tool("list_workflows", {})
        stored = await _events(live, "workflow.list")
        answered.set()
    assert not result.is_error
    assert early == [False]  # the answer did not get out while its event waited
    assert [(event.outcome, event.transport) for event in stored] == [("allowed", "mcp-http")]


def _failing_audit(live: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read's event fails to commit, as on a full disk."""
    writer = live.platform.audit
    record = writer.record

    async def broken(event: Any) -> None:
        if event.action == "workflow.list":
            raise OSError("disk full")
        await record(event)

    monkeypatch.setattr(writer, "record", broken)


async def _create_flow(connect: Any, admin: str) -> None:
    async with connect(admin) as client:
        created = await client.call_tool("create_workflow", {"definition": DEFINITION})
    assert not created.is_error, created


async def test_an_answer_whose_audit_event_failed_never_leaves_in_the_2025_era(
    live: Any, raw: httpx.AsyncClient, connect: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _create_flow(connect, admin)
    _failing_audit(live, monkeypatch)
    path = "/organizations/acme/environments/dev/mcp"
    headers = {**ACCEPT, "Authorization": f"Bearer {admin}"}
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    opened = await raw.post(path, json=initialize, headers=headers)
    headers |= {"Mcp-Session-Id": opened.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-11-25"}
    await raw.post(path, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "list_workflows", "arguments": {}}}
    response = await raw.post(path, json=call, headers=headers)
    assert response.headers["content-type"].startswith("text/event-stream")
    (data,) = [line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")]
    _assert_withheld(response.text, json.loads(data), 7)
    assert await _events(live, "workflow.list") == []


async def test_an_answer_whose_audit_event_failed_never_leaves_in_the_2026_era(
    live: Any, raw: httpx.AsyncClient, connect: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _create_flow(connect, admin)
    _failing_audit(live, monkeypatch)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    call = {
        "jsonrpc": "2.0",
        "id": 8,
        "method": "tools/call",
        "params": {"name": "list_workflows", "arguments": {}, "_meta": meta},
    }
    headers = {
        **ACCEPT,
        "Authorization": f"Bearer {admin}",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": "list_workflows",
    }
    response = await raw.post("/organizations/acme/environments/dev/mcp", json=call, headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    # The replacement is shorter than the answer: a stale Content-Length would have broken the response.
    assert int(response.headers["content-length"]) == len(response.content)
    _assert_withheld(response.text, response.json(), 8)
    # The server keeps serving, and a call whose event can be written is answered in full.
    monkeypatch.undo()
    answered = await raw.post("/organizations/acme/environments/dev/mcp", json=call, headers=headers)
    assert FLOW_NAME in answered.text


def _assert_withheld(body: str, message: dict[str, Any], request_id: int) -> None:
    assert FLOW_NAME not in body
    assert message["id"] == request_id
    result = message["result"]
    assert result["isError"] is True
    assert "structuredContent" not in result
    (content,) = result["content"]
    assert content["text"].startswith("audit_failure: the audit event for list_workflows could not be written")


async def test_an_answer_sent_while_a_keep_alive_waits_for_the_event_is_held_as_well() -> None:
    # An SSE response's keep-alive pings come from a task of their own: a ping waiting for the event must
    # not let the answer sent meanwhile pass before the event is done (and found failed).
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    door = Door(send)
    release = asyncio.Event()

    async def failing_event() -> None:
        await release.wait()
        raise AuditFailure("the audit event for list_workflows could not be written; nothing was changed")

    assert door.hold(3)(asyncio.create_task(failing_event()))
    await door.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )
    ping = {"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True}
    data = json.dumps({"jsonrpc": "2.0", "id": 3, "result": {"content": [], "structuredContent": {"flow": FLOW_NAME}}})
    answer = {
        "type": "http.response.body",
        "body": f"event: message\r\ndata: {data}\r\n\r\n".encode(),
        "more_body": False,
    }
    sending = [asyncio.create_task(door.send(ping)), asyncio.create_task(door.send(answer))]
    for _ in range(5):
        await asyncio.sleep(0)  # both sends reach the event
    assert sent == []
    release.set()
    await asyncio.gather(*sending)
    bodies = b"".join(bytes(message.get("body", b"")) for message in sent)
    assert sent[0]["type"] == "http.response.start"
    assert FLOW_NAME.encode() not in bodies
    assert b"audit_failure: the audit event for list_workflows could not be written" in bodies
    assert not door.hold(4)(asyncio.create_task(failing_event()))  # the response is complete: nothing to hold
    release.set()
