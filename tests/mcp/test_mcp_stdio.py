"""``testgate mcp serve`` over stdio: a real subprocess on a fresh data directory, driven by the SDK client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import ElicitResult
from sqlalchemy import select

from testgate.store.audit import AuditEventRow
from testgate.store.db import Database, create_engine
from testgate.store.tenancy import Organization


@asynccontextmanager
async def stdio(tmp_path: Path, *, mode: str = "legacy", elicitation: Any = None) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "testgate", "mcp", "serve", "--org", "acme"],
        env={
            "TESTGATE_DATA_DIR": str(tmp_path / "data"),
            # No login context: the in-process mode, whatever the machine's user has logged in to.
            "TESTGATE_CONFIG_DIR": str(tmp_path / "config"),
            "TESTGATE_LOG_FORMAT": "json",
        },
    )
    with (tmp_path / "stderr.log").open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, elicitation_callback=elicitation) as client:
            yield client


async def audit_events(tmp_path: Path) -> list[AuditEventRow]:
    db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'testgate.db'}"))
    try:
        async with db.session() as session:
            return list(await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))
    finally:
        await db.dispose()


async def test_stdio_serves_the_local_platform_as_the_local_owner(tmp_path: Path, flow: str) -> None:
    async with stdio(tmp_path) as client:
        listing = await client.list_tools()
        created = await client.call_tool("create_workflow", {"definition": flow})
        listed = await client.call_tool("list_workflows", {})
        refused = await client.call_tool("delete_workflow", {"name": "smoke"})
    assert {"list_workflows", "run_workflow", "wait_for_executions", "delete_workflow"} <= {
        t.name for t in listing.tools
    }
    assert not created.is_error
    assert listed.structured_content["count"] == 1
    # No elicitation capability on stdio either: a destructive tool is refused, nothing deleted.
    assert refused.is_error
    assert "confirmation_required" in refused.content[0].text  # type: ignore[union-attr]
    events = await audit_events(tmp_path)
    assert [(e.action, e.outcome, e.transport, e.actor_type) for e in events] == [
        ("workflow.create", "allowed", "mcp-stdio", "local"),
        ("workflow.list", "allowed", "mcp-stdio", "local"),
        ("workflow.delete", "denied", "mcp-stdio", "local"),
    ]


async def test_stdio_confirms_a_deletion_in_the_2026_era(tmp_path: Path, flow: str) -> None:
    async def accept(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"confirm": True})

    async with stdio(tmp_path, mode="2026-07-28", elicitation=accept) as client:
        await client.call_tool("create_workflow", {"definition": flow})
        deleted = await client.call_tool("delete_workflow", {"name": "smoke"})
        listed = await client.call_tool("list_workflows", {})
    assert deleted.structured_content["deleted"] is True
    assert listed.structured_content["count"] == 0
    # Logs went to stderr while stdout carried nothing but MCP messages.
    assert '"logger": "alembic.runtime.migration"' in (tmp_path / "stderr.log").read_text()


async def test_an_environment_that_does_not_exist_is_refused_once_the_database_has_one(tmp_path: Path) -> None:
    """A first start creates what --org/--env name, as it creates the defaults; afterwards a typo was created
    too, and the agent worked in a new, empty environment without a word."""
    from testgate.platform import tenancy
    from testgate.store.migrate import upgrade

    async with stdio(tmp_path) as client:  # the first start: creates acme and its default environment
        await client.list_tools()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")},
        "TESTGATE_DATA_DIR": str(tmp_path / "data"),
        "TESTGATE_CONFIG_DIR": str(tmp_path / "config"),
    }
    command = [sys.executable, "-m", "testgate", "mcp", "serve", "--org", "acme", "--env", "stagng"]
    done = await anyio.run_process(command, env=env, stdin=subprocess.DEVNULL, check=False)
    stderr, stdout = done.stderr.decode(), done.stdout.decode()

    assert done.returncode == 2
    assert "environment 'stagng' not found in organization 'acme'" in stderr
    assert "testgate environment create" in stderr
    assert stdout == ""  # nothing on the MCP wire
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'testgate.db'}")
    await upgrade(engine)
    db = Database(engine)
    try:
        async with db.session() as session:
            acme = await tenancy.organization_by_slug(session, "acme")
            assert [e.slug for e in await tenancy.list_environments(session, acme)] == ["dev"]
            # The first start made what --org named, and not the default organization besides.
            assert list(await session.scalars(select(Organization.slug))) == ["acme"]
    finally:
        await db.dispose()


async def test_a_database_that_cannot_be_used_is_one_line_before_the_handshake(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "testgate.db").write_bytes(b"not SQLite at all" * 100)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")},
        "TESTGATE_DATA_DIR": str(data),
        "TESTGATE_CONFIG_DIR": str(tmp_path / "config"),
    }
    done = await anyio.run_process(
        [sys.executable, "-m", "testgate", "mcp", "serve"], env=env, stdin=subprocess.DEVNULL, check=False
    )

    assert done.returncode == 1
    assert done.stderr.decode().startswith("error: cannot use the database at sqlite")
    assert "file is not a database" in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    assert done.stdout == b""  # nothing on the MCP wire
