"""What the server offers besides tools: the failure-triage prompt and the workflow schema resource."""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    GetPromptRequestParams,
    GetPromptResult,
    ListPromptsResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    Prompt,
    PromptArgument,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    TextContent,
    TextResourceContents,
)

from testgate.platform import spec

TRIAGE = "triage_failed_execution"
SCHEMA_URI = "testgate://schemas/testworkflow.json"
SCHEMA_MIME = "application/schema+json"

_TRIAGE_STEPS = """\
Triage the failed execution {execution} in this testgate environment, using the testgate tools:

1. get_execution(id="{execution}"): note its status and reason, which steps failed (exit code,
   duration), the test counts, the workflow name and the console link.
2. get_execution_results(id="{execution}", status=["failed", "errored"]): the failing tests with
   their messages and traces.
3. fetch_execution_logs(id="{execution}", grep=<a failing test's name, or "FAIL|Error|Traceback">,
   context=5): the log lines around each failure. Narrow with step=<the failing step's index>; the
   default is the last 100 lines.
4. list_artifacts(id="{execution}"), then read_artifact(id="{execution}", path=..., grep=...) for the
   reports and logs the workflow kept.
5. get_workflow_metrics(name=<the workflow>): its pass rate and flip rate, and whether the failing
   tests are among its flaky_tests.
6. Summarize for the user: what failed; the most likely cause (a code change, the environment, or a
   flaky test) with the evidence (quote the log lines and traces); and the next step (a fix, a re-run
   with run_workflow, or quarantining a flaky test). End with the console link.

Read only: do not run, abort or delete anything unless the user asks."""


async def list_prompts(ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None) -> ListPromptsResult:
    """The prompts this server offers."""
    argument = PromptArgument(
        name="execution", description="the execution's id, or 'workflow-name#number' (e.g. 'smoke#12')", required=True
    )
    prompt = Prompt(
        name=TRIAGE,
        title="Triage a failed execution",
        description="Walk through a failed execution's results, logs, artifacts and flakiness, then summarize.",
        arguments=[argument],
    )
    return ListPromptsResult(prompts=[prompt])


async def get_prompt(ctx: ServerRequestContext[Any, Any], params: GetPromptRequestParams) -> GetPromptResult:
    """Render a prompt with its arguments."""
    if params.name != TRIAGE:
        raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {params.name!r}")
    execution = (params.arguments or {}).get("execution", "").strip()
    if not execution:
        raise MCPError(code=INVALID_PARAMS, message="the 'execution' argument is required")
    text = _TRIAGE_STEPS.format(execution=execution.replace('"', "'"))
    message = PromptMessage(role="user", content=TextContent(type="text", text=text))
    return GetPromptResult(description=f"Triage execution {execution}", messages=[message])


async def list_resources(
    ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
) -> ListResourcesResult:
    """The resources this server offers."""
    schema = Resource(
        uri=SCHEMA_URI,
        name="testworkflow-schema",
        title="TestWorkflow JSON Schema",
        description="JSON Schema (2020-12) of the YAML documents create_workflow and update_workflow accept.",
        mime_type=SCHEMA_MIME,
    )
    return ListResourcesResult(resources=[schema])


async def list_resource_templates(
    ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams | None
) -> ListResourceTemplatesResult:
    """None: the one resource has a fixed URI (answered rather than -32601, as the capability is declared)."""
    return ListResourceTemplatesResult(resource_templates=[])


async def read_resource(ctx: ServerRequestContext[Any, Any], params: ReadResourceRequestParams) -> ReadResourceResult:
    """Read a resource by URI (the schema is a static document, the same for every caller)."""
    if params.uri != SCHEMA_URI:
        # MCP: an unknown resource is -32602 with the URI in data.
        raise MCPError(code=INVALID_PARAMS, message="resource not found", data={"uri": params.uri})
    contents = TextResourceContents(uri=SCHEMA_URI, mime_type=SCHEMA_MIME, text=spec.schema_text())
    return ReadResourceResult(contents=[contents])
