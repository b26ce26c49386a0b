"""Workflow pages: the list with labels, last status and pass rate; one workflow with its YAML, chart and runs.

GET  /ui/{org}/{env}/workflows               workflow.list, execution.list (recent pass rates)
GET  /ui/{org}/{env}/workflows/{name}        workflow.get, workflow.definition, execution.list, workflow.metrics
POST /ui/{org}/{env}/workflows/{name}/run    workflow.run (run permission), then to the execution
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from testgate.access.principal import Permission
from testgate.errors import InvalidInput
from testgate.operations.executions import ExecutionList
from testgate.operations.results import MetricsOut
from testgate.operations.workflows import Definition, RunOut, WorkflowDetail, WorkflowList
from testgate.web import charts, forms, pages
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
Name = Annotated[str, Path(max_length=63)]
Filter = Annotated[str, Query(max_length=500)]
RECENT = 500  # executions read for the list's pass rates
RUNS = 30  # runs in a workflow's chart and table
RETYPE = "enter it again: a sensitive value is never sent back to the browser"


@router.get("/workflows", response_class=HTMLResponse)
async def workflows(c: Con, selector: Filter = "", text: Filter = "") -> HTMLResponse:
    """Every workflow of the environment with its labels, last status and recent pass rate."""
    listed = await c.run(
        WorkflowList, "workflow.list", forms.optional({"selector": selector, "text": text}, "selector", "text")
    )
    recent = await c.run(ExecutionList, "execution.list", {"limit": RECENT})
    return c.page(
        "workflows.html",
        title="Workflows",
        section="workflows",
        workflows=listed.workflows,
        rates=charts.pass_rates(recent.executions),
        recent=RECENT,
        selector=selector,
        text=text,
    )


@router.get("/workflows/{name}", response_class=HTMLResponse)
async def workflow(c: Con, name: Name) -> HTMLResponse:
    """One workflow: its definition, run form, health and recent runs."""
    return await _workflow_page(c, name)


async def _workflow_page(
    c: Console, name: str, refused: InvalidInput | None = None, fields: Mapping[str, str] | None = None
) -> HTMLResponse:
    """The workflow page; after a refused run, its form again with what was entered and why it was refused."""
    detail = await c.run(WorkflowDetail, "workflow.get", {"name": name})
    definition = await c.run(Definition, "workflow.definition", {"name": name})
    runs = await c.run(ExecutionList, "execution.list", {"workflow": name, "limit": RUNS})
    metrics = await c.run(MetricsOut, "workflow.metrics", {"name": name})
    entered, problems = _refusal(detail, refused, fields or {}) if refused else ({}, {})
    known = {"tags", *(f"config.{p.name}" for p in detail.config_parameters)}
    return c.page(
        "workflow.html",
        422 if refused else 200,
        title=detail.name,
        section="workflows",
        workflow=detail,
        definition=definition.definition,
        runs=runs.executions,
        metrics=metrics,
        chart=charts.history(runs.executions, lambda run: c.url("execution", run.id)),
        chart_name=detail.name,
        current="",
        can_run=c.can(Permission.RUN),
        entered=entered,
        problems=problems,
        refusal=pages.sentence(refused.message) if refused else "",
        stray=[f"{k}: {m}" if k else m for k, found in problems.items() if k not in known for m in found],
    )


def _refusal(
    detail: WorkflowDetail, refused: InvalidInput, fields: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """What goes back into a refused run form (never a sensitive value), and each field's problems."""
    secret = {f"config.{p.name}" for p in detail.config_parameters if p.sensitive}
    entered = {k: v for k, v in fields.items() if k == "tags" or (k.startswith("config.") and k not in secret)}
    problems = forms.problems(refused)
    for field in sorted(secret & {k for k, v in fields.items() if v}):
        problems.setdefault(field, []).append(RETYPE)
    return entered, problems


@router.post("/workflows/{name}/run", response_model=None)
async def run(c: Con, name: Name) -> RedirectResponse | HTMLResponse:
    """Start a run with the form's config values (empty: the default) and tags; refused without run permission.

    Refused values come back in the form (sensitive ones excepted), each field with its problem.
    """
    fields = await c.form()
    try:
        args = {
            "name": name,
            "config": forms.prefixed(fields, "config."),
            "tags": forms.pairs(fields.get("tags", ""), "tags"),
        }
        started = await c.run(RunOut, "workflow.run", args)
    except InvalidInput as exc:
        return await _workflow_page(c, name, exc, fields)
    return RedirectResponse(c.url("execution", started.id), status_code=303)
