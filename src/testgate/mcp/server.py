"""The MCP server: the SDK's low-level ``Server`` with tools generated from the operations registry.

The low-level server is used because every tool has an explicit JSON schema from its operation and
takes raw arguments straight to ``dispatch`` (which validates, authorizes and audits them); the
``MCPServer`` tool manager would rebuild schemas from Python signatures and validate before dispatch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from mcp.server.lowlevel import Server
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity

from testgate import __version__
from testgate.mcp import guides
from testgate.mcp.caller import Caller, binding_key
from testgate.mcp.confirm import DEFAULT_TIMEOUT, Ledger, MemoryLedger
from testgate.mcp.tools import PlatformRef, ToolCatalog

NAME = "testgate"
STATE_TTL = 600.0
INSTRUCTIONS = """\
testgate runs and analyses a team's test workflows. Every tool acts in one environment: the one in the \
server's URL (or the local default on stdio). Start with list_workflows; run_workflow starts an execution \
and returns at once, wait_for_executions waits for it with progress; get_execution_results, \
fetch_execution_logs and read_artifact explain failures (the triage_failed_execution prompt walks \
through them). Destructive tools ask the user to confirm, and do nothing unless they accept."""


def state_security(keys: Sequence[bytes | str] | None) -> RequestStateSecurity:
    """Sealing for 2026-07-28 ``requestState``: shared keys across replicas, else a process-local key."""
    ring = list(keys) if keys else [os.urandom(32)]
    return RequestStateSecurity(keys=ring, ttl=STATE_TTL, bind_principal=binding_key, audience=NAME)


def build_server(
    platform: PlatformRef,
    *,
    local: Caller | None = None,
    state_keys: Sequence[bytes | str] | None = None,
    confirm_timeout: float = DEFAULT_TIMEOUT,
    ledger: Ledger | None = None,
) -> Server[Any]:
    """A server whose tools reach ``platform`` as the request's caller (or as ``local`` on stdio)."""
    ledger = ledger or MemoryLedger(ttl=STATE_TTL)
    catalog = ToolCatalog(platform, local=local, ledger=ledger, confirm_timeout=confirm_timeout)
    server: Server[Any] = Server(
        NAME,
        version=__version__,
        title="testgate",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=catalog.input_schema,
        on_list_tools=catalog.list_tools,
        on_call_tool=catalog.call_tool,
        on_list_prompts=guides.list_prompts,
        on_get_prompt=guides.get_prompt,
        on_list_resources=guides.list_resources,
        on_list_resource_templates=guides.list_resource_templates,
        on_read_resource=guides.read_resource,
    )
    # The SDK installs this boundary only on MCPServer; the low-level tier appends it itself.
    server.middleware.append(RequestStateBoundary(state_security(state_keys), default_audience=NAME))
    return server
