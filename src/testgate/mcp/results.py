"""What a tool call returns: structured content with its JSON text, or an error an agent can act on."""

from __future__ import annotations

import pydantic_core
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, CallToolResult, TextContent
from pydantic import BaseModel

from testgate.errors import TestgateError

# What to do next, per error code: the message says what went wrong, the hint how to move on.
HINTS = {
    "not_found": "Check the name or id: list_workflows, list_executions and list_test_cases show what exists.",
    "permission_denied": "The caller lacks the permission this tool needs; ask an organization admin for it, "
    "or use a credential that holds it.",
    "invalid_input": "Fix the named arguments and call the tool again.",
    "conflict": "Read the current state (get_workflow, get_execution) and retry if it still applies.",
    "limit_exceeded": "Ask for less: a smaller page, a line range, or grep.",
    "confirmation_refused": "Only call it again if the user asks you to.",
}


def success(output: BaseModel) -> CallToolResult:
    """Structured content (numbers stay numbers) plus the same JSON as text, for clients without schemas."""
    data = output.model_dump(mode="json")
    text = pydantic_core.to_json(data).decode()  # UTF-8, compact; a quarter of json.dumps' time here
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def failure(exc: TestgateError, hint: str | None = None) -> CallToolResult:
    """A domain error as a tool result with ``isError`` (MCP: tool errors are results, not protocol errors);
    ``hint`` replaces the error code's usual advice when the caller knows better."""
    lines = [f"{exc.code}: {exc}"]
    if hint or exc.code in HINTS:
        lines.append(hint or HINTS[exc.code])
    return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))], is_error=True)


def internal_error(request_id: str | None) -> MCPError:
    """JSON-RPC -32603 for a crash: the request id to quote, never the exception's text."""
    return MCPError(
        code=INTERNAL_ERROR,
        message=f"internal error (request id {request_id}); the server logged it and keeps serving",
        data={"request_id": request_id},
    )
