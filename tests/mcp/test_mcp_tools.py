"""Generated tools over streamable HTTP, in both protocol eras, with the SDK's own client."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, TextContent
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from testgate.access.principal import Permission
from testgate.operations import registry as reg
from testgate.operations.context import OpContext
from testgate.store.audit import AuditEventRow

EXPECTED_TOOLS = {
    "list_workflows", "get_workflow", "get_workflow_definition", "get_workflow_schema", "create_workflow",
    "update_workflow", "apply_workflow", "delete_workflow", "run_workflow", "abort_execution", "list_executions",
    "get_execution", "fetch_execution_logs", "wait_for_executions", "update_execution_tags", "list_artifacts",
    "read_artifact", "get_execution_results", "get_workflow_metrics", "list_labels", "list_test_cases",
    "get_test_case", "create_test_case", "update_test_case", "delete_test_case", "bulk_delete_test_cases",
    "build_dashboard_url", "upload_results",
}  # fmt: skip


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_tools_list_has_every_operation_in_one_page_with_schemas_and_annotations(
    connect: Any, admin: str, mode: str
) -> None:
    async with connect(admin, mode=mode) as client:
        listing = await client.list_tools()
    assert listing.next_cursor is None
    tools = {t.name: t for t in listing.tools}
    assert set(tools) == {op.tool for op in reg.agent_tools()}
    assert set(tools) >= EXPECTED_TOOLS
    # Operations that hand out a token's secret are not offered: a model's context is no place for one.
    assert {op.tool for op in reg.registry().values()} - set(tools) == {"create_token", "rotate_token"}
    for op in reg.agent_tools():
        tool = tools[op.tool]
        assert tool.description == op.description
        assert tool.title == op.title
        assert tool.input_schema == op.input.model_json_schema()
        assert tool.output_schema == op.output.model_json_schema(mode="serialization")
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is op.read_only
        assert tool.annotations.destructive_hint is op.destructive
        assert tool.annotations.idempotent_hint is op.idempotent
        assert tool.annotations.open_world_hint is False
    # An environment's tools take their environment from the URL, never from an argument.
    scoped = [tools[op.tool] for op in reg.agent_tools() if op.scope == "environment"]
    assert all("environment" not in t.input_schema.get("properties", {}) for t in scoped)


async def test_an_agent_creates_runs_waits_with_progress_and_reads_the_failed_tests(
    connect: Any, admin: str, mode: str, flow: str
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async with connect(admin, mode=mode) as client:
        created = await client.call_tool("create_workflow", {"definition": flow})
        assert not created.is_error, text_of(created)
        listed = await client.call_tool("list_workflows", {"selector": "team=qa"})
        assert listed.structured_content["count"] == 1
        run = await client.call_tool("run_workflow", {"name": "smoke"})
        execution = run.structured_content
        assert execution["status"] == "queued"
        assert isinstance(execution["number"], int)
        waited = await client.call_tool(
            "wait_for_executions", {"ids": [execution["id"]], "timeout": 30}, progress_callback=on_progress
        )
        assert waited.structured_content["finished"] is True, text_of(waited)
        results = await client.call_tool("get_execution_results", {"id": "smoke#1", "status": ["failed"]})
        logs = await client.call_tool("fetch_execution_logs", {"id": execution["id"], "grep": "FAILED"})
        # The runner's own lines say step -1: the filter takes what the output shows (its minimum was 0).
        system = await client.call_tool("fetch_execution_logs", {"id": execution["id"], "step": -1})
    assert progress
    assert not system.is_error, text_of(system)
    assert system.structured_content["lines"]
    assert {line["step"] for line in system.structured_content["lines"]} == {-1}
    assert progress[-1][:2] == (1, 1)
    page = results.structured_content
    assert (page["total"], page["passed"], page["failed"]) == (2, 1, 1)
    assert [r["name"] for r in page["results"]] == ["divides"]
    assert text_of(results).startswith("{")
    assert any("FAILED calc.divides" in line["text"] for line in logs.structured_content["lines"])


async def test_a_domain_error_is_an_is_error_result_an_agent_can_act_on(connect: Any, admin: str, mode: str) -> None:
    async with connect(admin, mode=mode) as client:
        invalid = await client.call_tool("create_workflow", {"definition": "kind: TestWorkflow\nmetadata: {}"})
        missing = await client.call_tool("get_workflow", {"name": "nope"})
        extra = await client.call_tool("list_executions", {"limit": 0, "surprise": True})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("drop_database", {})
    assert unknown.value.error.code == INVALID_PARAMS  # MCP: an unknown tool is a protocol error
    assert invalid.is_error
    assert text_of(invalid).startswith("invalid_input:")
    assert missing.is_error
    assert "not_found" in text_of(missing)
    assert "'nope'" in text_of(missing)
    assert extra.is_error
    assert "limit" in text_of(extra)
    assert "surprise" in text_of(extra)


async def test_a_name_that_matches_nothing_is_not_found_rather_than_an_empty_answer(
    connect: Any, admin: str, mode: str, flow: str
) -> None:
    async with connect(admin, mode=mode) as client:
        assert not (await client.call_tool("create_workflow", {"definition": flow})).is_error
        never_ran = await client.call_tool("list_executions", {"workflow": "smoke"})
        typo = await client.call_tool("list_executions", {"workflow": "smoek"})
        run = (await client.call_tool("run_workflow", {"name": "smoke"})).structured_content
        by_number = await client.call_tool("build_dashboard_url", {"kind": "execution", "ref": "smoke#1"})
        links = {
            kind: await client.call_tool("build_dashboard_url", {"kind": kind, "ref": "nope"})
            for kind in ("workflow", "execution", "test_case")
        }
        listing = await client.call_tool("build_dashboard_url", {"kind": "executions"})
    # An existing workflow that never ran is an empty page; a name nothing knows is an error naming it.
    assert never_ran.structured_content == {"executions": [], "next_cursor": None}
    assert typo.is_error
    assert text_of(typo).startswith("not_found: workflow 'smoek' not found")
    # A link names the execution by id, however it was asked for, and never points at nothing.
    assert by_number.structured_content["url"].endswith(f"/ui/acme/dev/executions/{run['id']}")
    for kind, answer in links.items():
        assert answer.is_error, kind
        assert text_of(answer).startswith("not_found: "), kind
        assert "'nope' not found in environment 'dev'" in text_of(answer), kind
    assert listing.structured_content["url"].endswith("/ui/acme/dev/executions")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    ok: bool


async def _explode(ctx: OpContext, args: _In) -> _Out:
    raise RuntimeError("secret internals")


@pytest.fixture
def exploding_tool() -> Any:
    """A temporary operation that crashes; the server is built after it is registered."""
    op = reg.register(
        reg.Operation(
            name="test.explode",
            tool="explode",
            title="Explode",
            description="Always crashes.",
            permission=Permission.READ,
            input=_In,
            output=_Out,
            handler=_explode,
            read_only=True,
        )
    )
    yield op
    del reg._REGISTRY[op.name]


async def test_a_crash_answers_internal_error_with_the_request_id_and_the_server_keeps_serving(
    exploding_tool: Any, live: Any, connect: Any, admin: str, mode: str
) -> None:
    async with connect(admin, mode=mode) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("explode", {})
        after = await client.call_tool("list_labels", {})
    error = info.value.error
    assert error.code == INTERNAL_ERROR
    assert "secret internals" not in error.message
    request_id = error.data["request_id"]
    assert request_id
    assert request_id in error.message
    assert not after.is_error
    async with live.platform.db.session() as session:
        event = await session.scalar(select(AuditEventRow).where(AuditEventRow.action == "test.explode"))
    assert event is not None
    assert (event.outcome, event.request_id, event.transport) == ("error", request_id, "mcp-http")


async def test_the_triage_prompt_and_the_workflow_schema_resource(connect: Any, admin: str, mode: str) -> None:
    async with connect(admin, mode=mode) as client:
        prompts = await client.list_prompts()
        prompt = await client.get_prompt("triage_failed_execution", {"execution": "smoke#3"})
        resources = await client.list_resources()
        schema = await client.read_resource("testgate://schemas/testworkflow.json")
    assert [p.name for p in prompts.prompts] == ["triage_failed_execution"]
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    for step in ("get_execution", "get_execution_results", "fetch_execution_logs", "read_artifact", "metrics"):
        assert step in text
    assert "smoke#3" in text
    (resource,) = resources.resources
    assert resource.mime_type == "application/schema+json"
    assert '"TestWorkflow"' in schema.contents[0].text  # type: ignore[union-attr]


async def test_a_member_with_read_gets_permission_denied_from_run_workflow(connect: Any, issue: Any, live: Any) -> None:
    reader = await issue(Permission.READ)
    async with connect(reader) as client:
        listed = await client.call_tool("list_workflows", {})
        run = await client.call_tool("run_workflow", {"name": "smoke"})
    assert not listed.is_error
    assert run.is_error
    assert text_of(run).startswith("permission_denied: run_workflow needs run permission; you have read")


# MCP authorization, scope challenge handling: when the token's scope (not the person's role) denied the
# call, say which scope to ask for; "ask an organization admin" sent an owner with a read-scoped token to
# themselves.
@pytest.mark.parametrize(
    ("cap", "held", "advice"),
    [
        (Permission.READ, Permission.WRITE, "asking for the scope testgate:write"),
        (Permission.WRITE, Permission.READ, "ask an organization admin"),  # the role denied: no step-up helps
    ],
)
def test_a_denial_by_the_tokens_scope_says_which_scope_to_ask_for(
    cap: Permission, held: Permission, advice: str
) -> None:
    from testgate.access.principal import Principal, Role
    from testgate.errors import PermissionDenied
    from testgate.mcp.results import failure
    from testgate.mcp.tools import _step_up

    person = Principal("oauth", "u1", "ada", "org", Role.MEMBER, grants={"env": held}, cap=cap, user_id="u1")
    denied = PermissionDenied("create_workflow needs write permission", details={"required": "write"})

    text = text_of(failure(denied, _step_up(person, denied)))

    assert advice in text


async def test_a_tool_call_while_the_database_is_unreachable_is_a_result_to_retry_not_a_crash(
    connect: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(ctx: OpContext, args: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)")

    async with connect(admin) as client:
        monkeypatch.setitem(reg._REGISTRY, "label.list", dataclasses.replace(reg.get("label.list"), handler=refused))
        result = await client.call_tool("list_labels", {})

    assert result.is_error
    assert "the database is unreachable; try the call again shortly" in text_of(result)
    assert "10.0.0.5" not in text_of(result)
