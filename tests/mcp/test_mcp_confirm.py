"""Destructive tools are confirmed by MCP elicitation in both eras; nothing is deleted unless accepted."""

from __future__ import annotations

from typing import Any

import anyio
import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.session import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    InputRequiredResult,
)
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Mount

from testgate.mcp.hosted import MOUNT, HostedMCP
from testgate.store.audit import AuditEventRow
from testgate.store.workflows import WorkflowRow

MODERN = "2026-07-28"
QUESTION = "Delete workflow 'smoke' from environment 'dev'?"


def answering(*answers: ElicitResult, asked: list[str] | None = None) -> Any:
    """An elicitation callback that gives ``answers`` in turn, recording each question."""
    queue = list(answers)

    async def callback(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        if asked is not None:
            asked.append(params.message)
        assert "confirm" in params.requested_schema["properties"]  # type: ignore[union-attr]
        return queue.pop(0)

    return callback


YES = ElicitResult(action="accept", content={"confirm": True})


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def last_confirmation(live: Any) -> tuple[str, str | None]:
    async with live.platform.db.session() as session:
        event = await session.scalar(
            select(AuditEventRow).where(AuditEventRow.action == "workflow.delete").order_by(AuditEventRow.seq.desc())
        )
    assert event is not None
    return event.outcome, event.confirmation


async def test_an_accepted_confirmation_deletes_the_workflow(
    live: Any, connect: Any, admin: str, mode: str, flow: str
) -> None:
    asked: list[str] = []
    async with connect(admin, mode=mode, elicitation=answering(YES, asked=asked)) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        result = await client.call_tool("delete_workflow", {"name": "smoke"})
    assert not result.is_error, text_of(result)
    assert result.structured_content == {"deleted": True, "message": "deleted workflow 'smoke'"}
    assert asked == [QUESTION]
    assert await live.count(WorkflowRow) == 0
    assert await last_confirmation(live) == ("allowed", "accepted")


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (ElicitResult(action="decline"), "declined"),
        (ElicitResult(action="cancel"), "cancelled"),
        (ElicitResult(action="accept", content={"confirm": False}), "declined"),
    ],
    ids=["decline", "cancel", "accept-unchecked"],
)
async def test_a_declined_or_cancelled_confirmation_deletes_nothing_and_says_so(
    live: Any, connect: Any, admin: str, mode: str, flow: str, answer: ElicitResult, outcome: str
) -> None:
    async with connect(admin, mode=mode, elicitation=answering(answer)) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        result = await client.call_tool("delete_workflow", {"name": "smoke"})
    assert result.is_error
    assert f"the user {outcome} the confirmation; nothing was changed" in text_of(result)
    assert await live.count(WorkflowRow) == 1
    assert await last_confirmation(live) == ("denied", outcome)


async def test_a_client_without_elicitation_is_refused_and_nothing_is_deleted(
    live: Any, connect: Any, admin: str, mode: str, flow: str
) -> None:
    async with connect(admin, mode=mode) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        result = await client.call_tool("delete_workflow", {"name": "smoke"})
    assert result.is_error
    assert text_of(result).startswith("confirmation_required:")
    assert "did not declare elicitation support). Nothing was changed" in text_of(result)
    assert await live.count(WorkflowRow) == 1
    assert await last_confirmation(live) == ("denied", "unavailable")


async def test_a_2026_confirmation_cannot_be_replayed_to_delete_twice(
    live: Any, connect: Any, admin: str, flow: str
) -> None:
    args = {"name": "smoke"}
    async with connect(admin, mode=MODERN, elicitation=answering()) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        asked = await client.session.call_tool("delete_workflow", args, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        assert asked.input_requests["confirm"].params.message == QUESTION  # type: ignore[union-attr]
        answer = {"confirm": YES}
        done = await client.session.call_tool(
            "delete_workflow",
            args,
            input_responses=answer,
            request_state=asked.request_state,
            allow_input_required=True,
        )
        assert isinstance(done, CallToolResult)
        assert done.structured_content["deleted"] is True
        await client.call_tool("create_workflow", {"definition": flow})
        # The same answer and state again (a replay): the server asks anew instead of deleting.
        replay = await client.session.call_tool(
            "delete_workflow",
            args,
            input_responses=answer,
            request_state=asked.request_state,
            allow_input_required=True,
        )
    assert isinstance(replay, InputRequiredResult)
    assert await live.count(WorkflowRow) == 1


async def test_a_2026_confirmation_is_bound_to_its_principal_and_arguments(
    live: Any, connect: Any, admin: str, issue: Any, flow: str
) -> None:
    other = await issue(name="other-agent")
    answer = {"confirm": YES}
    async with connect(admin, mode=MODERN, elicitation=answering()) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        asked = await client.session.call_tool("delete_workflow", {"name": "smoke"}, allow_input_required=True)
        assert isinstance(asked, InputRequiredResult)
        with pytest.raises(MCPError) as changed:
            await client.session.call_tool(
                "delete_workflow",
                {"name": "smoke", "delete_executions": True},
                input_responses=answer,
                request_state=asked.request_state,
            )
    async with connect(other, mode=MODERN, elicitation=answering()) as intruder:
        with pytest.raises(MCPError) as stolen:
            await intruder.session.call_tool(
                "delete_workflow", {"name": "smoke"}, input_responses=answer, request_state=asked.request_state
            )
    # The SDK's sealed requestState names the tool, its arguments and the principal it was minted for.
    assert changed.value.error.code == stolen.value.error.code == INVALID_PARAMS
    assert await live.count(WorkflowRow) == 1


async def test_each_2025_deletion_asks_again_and_a_smuggled_answer_is_ignored(
    live: Any, connect: Any, admin: str, flow: str
) -> None:
    asked: list[str] = []
    callback = answering(YES, ElicitResult(action="decline"), ElicitResult(action="decline"), asked=asked)
    async with connect(admin, elicitation=callback) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        first = await client.call_tool("delete_workflow", {"name": "smoke"})
        await client.call_tool("create_workflow", {"definition": flow})
        second = await client.call_tool("delete_workflow", {"name": "smoke"})
        # 2025-11-25 has no inputResponses: an answer sent along with the call is not a confirmation,
        smuggled = await client.session.call_tool(
            "delete_workflow", {"name": "smoke"}, input_responses={"confirm": YES}
        )
        # and a requestState the server did not seal is refused outright.
        with pytest.raises(MCPError) as forged:
            await client.session.call_tool(
                "delete_workflow", {"name": "smoke"}, input_responses={"confirm": YES}, request_state='{"nonce": "x"}'
            )
    assert forged.value.error.code == INVALID_PARAMS
    assert not first.is_error
    assert second.is_error
    assert smuggled.is_error
    assert asked == [QUESTION] * 3
    assert await live.count(WorkflowRow) == 1


async def test_a_2025_confirmation_answered_too_late_is_refused_and_deletes_nothing(
    platform: Any, settings: Any, issue: Any, serve: Any, flow: str
) -> None:
    hosted = HostedMCP(settings, lambda: platform, confirm_timeout=0.2)
    app = Starlette(routes=[Mount(MOUNT, app=hosted)], lifespan=lambda _: hosted.lifespan())
    token = await issue()

    async def slow_yes(context: Any, params: Any) -> ElicitResult:
        await anyio.sleep(0.8)  # a person who answers after the server stopped waiting
        return YES

    async with serve(app) as base:
        url = f"{base}/organizations/acme/environments/dev/mcp"
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        transport = streamable_http_client(url, http_client=http)
        async with http, Client(transport, mode="legacy", elicitation_callback=slow_yes) as client:
            await client.call_tool("create_workflow", {"definition": flow})
            result = await client.call_tool("delete_workflow", {"name": "smoke"})
        async with platform.db.session() as session:
            remaining = await session.scalar(select(func.count()).select_from(WorkflowRow))
    assert result.is_error
    assert "no answer to the confirmation within 0.2 s; nothing was changed" in text_of(result)
    assert remaining == 1


async def test_a_2025_client_that_fails_to_ask_is_refused_and_nothing_is_deleted(
    live: Any, connect: Any, admin: str, flow: str
) -> None:
    async def broken(context: Any, params: Any) -> ErrorData:
        return ErrorData(code=INTERNAL_ERROR, message="no UI available")

    async with connect(admin, elicitation=broken) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        result = await client.call_tool("delete_workflow", {"name": "smoke"})
    assert result.is_error
    assert "could not ask for confirmation (no UI available); nothing was changed" in text_of(result)
    assert await live.count(WorkflowRow) == 1
