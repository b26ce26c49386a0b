"""The MCP Inspector's CLI, a client testgate does not control, against a live server in both eras.

    mcp-inspector --cli <url> --transport http --header "Authorization: Bearer <token>" --method tools/list

The inspector is pinned and installed once into ``.tools/`` (``tests/tooling.py``); a missing npm or
registry counts as an absent service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.conftest import service_unavailable
from tests.tooling import INSPECTOR, NODE22, ToolUnavailable, ensure, node_env

from testgate.operations.registry import agent_tools

RUN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Inspector:
    """The installed inspector CLI and the environment it runs in (its own HOME: no stored state leaks in)."""

    executable: Path
    env: dict[str, str]

    async def run(self, url: str, *options: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        """Run one method; returns the exit code and the JSON it printed (a result or an error)."""
        headers = ["--header", f"Authorization: Bearer {token}"] if token else []
        command = [str(self.executable), "--cli", url, "--transport", "http", *headers]
        command += ["--format", "json", "--stored-auth-only", *options]
        with anyio.fail_after(RUN_TIMEOUT):
            done = await anyio.run_process(command, env=self.env, check=False)
        for stream in (done.stdout, done.stderr):
            lines = [line for line in stream.decode().splitlines() if line.startswith("{")]
            if lines:
                return done.returncode, json.loads(lines[-1])
        raise AssertionError(f"no JSON from the inspector: {done.stdout!r} {done.stderr!r}")


@pytest.fixture(scope="module")
def inspector(tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    try:
        ensure(NODE22)
        executable = ensure(INSPECTOR)
        env = node_env()
    except ToolUnavailable as exc:
        service_unavailable("npm registry (MCP Inspector)", str(exc))
    home = tmp_path_factory.mktemp("inspector-home")
    env |= {
        "HOME": str(home),
        "MCP_CATALOG_PATH": str(home / "mcp.json"),
        "MCP_CLIENT_CONFIG_PATH": str(home / "client.json"),
    }
    return Inspector(executable, env)


@pytest.fixture(params=["legacy", "modern"])
def era(request: pytest.FixtureRequest) -> str:
    """The inspector's ``--protocol-era``: legacy (2025-11-25 session) or modern (2026-07-28 stateless)."""
    return str(request.param)


async def test_the_inspector_lists_every_generated_tool(inspector: Inspector, live: Any, admin: str, era: str) -> None:
    code, answer = await inspector.run(live.url(), "--method", "tools/list", "--protocol-era", era, token=admin)
    assert code == 0, answer
    tools = answer["result"]["tools"]
    assert [tool["name"] for tool in tools] == [op.tool for op in agent_tools()]
    assert all(tool["inputSchema"]["type"] == "object" for tool in tools)


async def test_the_inspector_creates_a_workflow_and_lists_it(
    inspector: Inspector, live: Any, admin: str, era: str, flow: str
) -> None:
    create = [
        "--method",
        "tools/call",
        "--tool-name",
        "create_workflow",
        "--tool-args-json",
        json.dumps({"definition": flow}),
    ]
    code, created = await inspector.run(live.url(), *create, "--protocol-era", era, token=admin)
    assert code == 0, created
    assert created["result"]["isError"] is False, created

    code, listed = await inspector.run(
        live.url(), "--method", "tools/call", "--tool-name", "list_workflows", "--protocol-era", era, token=admin
    )
    assert code == 0, listed
    result = listed["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["count"] == 1
    assert [workflow["name"] for workflow in result["structuredContent"]["workflows"]] == ["smoke"]
    assert json.loads(result["content"][0]["text"]) == result["structuredContent"]


# MCP authorization §2.3: without a token the server answers 401, and the client reports it needs auth.
async def test_the_inspector_without_a_token_is_told_to_authenticate(inspector: Inspector, live: Any) -> None:
    code, answer = await inspector.run(live.url(), "--method", "tools/list")
    assert code != 0
    assert answer["error"]["code"] == "auth_required"
