"""Tools generated from the operations registry: one per operation, each call a ``dispatch``.

Nothing here is written per tool: names, titles, descriptions, input and output JSON schemas and
annotations all come from the ``Operation`` declarations, so the REST API, the CLI and MCP cannot drift.
``call_tool`` is the one place MCP converts errors: domain errors become ``isError`` results, anything
else is logged with its stack and answered with JSON-RPC -32603, and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    InputRequiredResult,
    ListToolsResult,
    PaginatedRequestParams,
    Tool,
    ToolAnnotations,
)

from testgate.access.principal import Principal
from testgate.errors import PermissionDenied, StorageUnavailable, TestgateError
from testgate.mcp.caller import Caller, caller_of
from testgate.mcp.confirm import DEFAULT_TIMEOUT, ConfirmationPending, Ledger, MemoryLedger, confirmer_for
from testgate.mcp.hold import hold_of
from testgate.mcp.results import failure, internal_error, success
from testgate.oauth import scopes
from testgate.operations.context import Call, Progress
from testgate.operations.dispatch import dispatch
from testgate.operations.registry import Operation, agent_tools
from testgate.platform.context import Platform
from testgate.store.db import database_down

log = structlog.get_logger("testgate.mcp")

PlatformRef = Callable[[], Platform]


def tool_of(op: Operation[Any, Any]) -> Tool:
    """The MCP tool declaration of an operation."""
    return Tool(
        name=op.tool,
        title=op.title,
        description=op.description,
        input_schema=op.input.model_json_schema(),
        output_schema=op.output.model_json_schema(mode="serialization"),
        annotations=ToolAnnotations(
            title=op.title,
            read_only_hint=op.read_only,
            destructive_hint=op.destructive,
            idempotent_hint=op.idempotent,
            # Tools act on this control plane's own store and runner, not on arbitrary outside systems.
            open_world_hint=False,
        ),
    )


def progress_of(session: ServerSession) -> Progress:
    """Progress notifications for the current request (a no-op when the client sent no progressToken)."""

    async def report(progress: float, total: float | None, message: str | None) -> None:
        await session.report_progress(progress, total, message)

    return report


def _step_up(principal: Principal, exc: PermissionDenied) -> str | None:
    """Advice for a denial caused by an OAuth token's scope, not the person's role: ask for the scope again
    (the MCP authorization spec's scope challenge; the account itself already holds enough)."""
    scope = scopes.scope_for_denial(principal, exc.details)
    if scope is None:
        return None
    return (
        f"This OAuth token's scope stops short of it, though your account allows it: authorize this client "
        f"again asking for the scope {scope}."
    )


class ToolCatalog:
    """The generated tools and the handlers the low-level server calls for ``tools/list`` and ``tools/call``."""

    def __init__(
        self,
        platform: PlatformRef,
        *,
        local: Caller | None = None,
        ledger: Ledger | None = None,
        confirm_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._platform = platform
        self._local = local
        self._ledger = ledger or MemoryLedger()
        self._confirm_timeout = confirm_timeout
        self._ops = {op.tool: op for op in agent_tools()}
        self._tools = {name: tool_of(op) for name, op in self._ops.items()}

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's input schema (the SDK validates ``Mcp-Param-*`` headers against it)."""
        tool = self._tools.get(name)
        return tool.input_schema if tool is not None else None

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        """Every tool in one page: the catalog is small and fixed, so there is never a next cursor."""
        return ListToolsResult(tools=list(self._tools.values()))

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult | InputRequiredResult:
        """Dispatch the operation behind ``params.name`` for the request's caller and environment."""
        op = self._ops.get(params.name)
        if op is None:
            # MCP: an unknown tool is a protocol error (-32602), not a tool result.
            raise MCPError(code=INVALID_PARAMS, message=f"unknown tool {params.name!r}")
        call = self._call(ctx, params, op, caller_of(ctx, self._local))
        try:
            output = await dispatch(self._platform(), call, op.name, params.arguments or {})
        except ConfirmationPending as pending:
            return pending.result if pending.result is not None else failure(pending)
        except PermissionDenied as exc:
            return failure(exc, _step_up(call.principal, exc))
        except TestgateError as exc:
            return failure(exc)
        except Exception as exc:
            if (cause := database_down(exc)) is not None:  # no crash: the agent may try again shortly
                log.warning("the database is unreachable", tool=op.tool, request_id=call.request_id, error=str(cause))
                return failure(StorageUnavailable("the database is unreachable; try the call again shortly"))
            log.exception("tool call crashed", tool=op.tool, request_id=call.request_id)
            raise internal_error(call.request_id) from None
        return success(output)

    def _call(
        self,
        ctx: ServerRequestContext[Any, Any],
        params: CallToolRequestParams,
        op: Operation[Any, Any],
        caller: Caller,
    ) -> Call:
        confirm = None
        if op.destructive:
            confirm = confirmer_for(
                ctx,
                ledger=self._ledger,
                caller_key=caller.key,
                tool=op.tool,
                arguments=params.arguments or {},
                responses=params.input_responses,
                state=params.request_state,
                timeout=self._confirm_timeout,
            )
        return Call(
            principal=caller.principal,
            organization=caller.organization,
            environment=caller.environment,
            transport=caller.transport,
            request_id=caller.request_id,
            source_address=caller.source_address,
            user_agent=caller.user_agent,
            confirm=confirm,
            progress=progress_of(ctx.session),
            hold=hold_of(ctx),
        )
