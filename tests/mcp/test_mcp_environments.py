"""An agent finds and creates environments through tools, then reaches the new one's MCP endpoint."""

from __future__ import annotations

from typing import Any

from testgate.access.principal import Permission

from .test_mcp_tools import text_of


async def test_an_admin_agent_creates_an_environment_and_connects_to_its_endpoint(
    connect: Any, admin: str, mode: str, live: Any
) -> None:
    async with connect(admin, mode=mode) as client:
        created = await client.call_tool("create_environment", {"slug": "staging", "name": "Staging"})
        listed = await client.call_tool("list_environments", {})
    assert not created.is_error, text_of(created)
    url = created.structured_content["mcp_url"]
    assert url.endswith("/organizations/acme/environments/staging/mcp")
    assert [e["slug"] for e in listed.structured_content["environments"]] == ["dev", "staging"]

    async with connect(admin, mode=mode, env="staging") as client:
        workflows = await client.call_tool("list_workflows", {})
    assert not workflows.is_error, text_of(workflows)
    assert workflows.structured_content["count"] == 0


async def test_a_member_agent_sees_its_own_environments_and_cannot_create_one(
    connect: Any, issue: Any, mode: str
) -> None:
    runner = await issue(Permission.RUN)
    async with connect(runner, mode=mode) as client:
        listed = await client.call_tool("list_environments", {})
        refused = await client.call_tool("create_environment", {"slug": "prod"})
    assert [(e["slug"], e["permission"]) for e in listed.structured_content["environments"]] == [("dev", "run")]
    assert refused.is_error
    assert "needs an organization owner or admin" in text_of(refused)
