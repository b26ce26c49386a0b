"""Execution pages: the filtered, keyset-paged list; one execution with steps, logs, results and artifacts.

GET  /ui/{org}/{env}/executions               execution.list (workflow, status, tags, since, text, cursor)
GET  /ui/{org}/{env}/executions/{id}          execution.get, execution.logs (the last lines, or from log_start);
                                              once finished also execution.results (tests, cursor),
                                              artifact.list, workflow.metrics (flaky tests)
POST /ui/{org}/{env}/executions/{id}/abort    execution.abort (run permission)
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from testgate.access.principal import Permission
from testgate.errors import NotFound
from testgate.operations.executions import AbortOut, ExecutionList
from testgate.operations.models import ExecutionDetail
from testgate.operations.results import ArtifactList, MetricsOut
from testgate.platform.executions import STATUSES, TERMINAL
from testgate.platform.logs import LogPage
from testgate.platform.pagination import MAX_KEY
from testgate.platform.results import ResultsPage
from testgate.web import charts, forms
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
ExecutionId = Annotated[str, Path(max_length=100)]
Filter = Annotated[str, Query(max_length=500)]
PAGE = 25
LOG_TAIL = 2000
RESULTS = 500
FAILURES = ("failed", "errored")
OUTCOMES = (*FAILURES, "passed", "skipped")
RUNS = 30  # runs of the workflow in the chart


@router.get("/executions", response_class=HTMLResponse)
async def executions(
    c: Con,
    workflow: Filter = "",
    status: Annotated[list[str] | None, Query(max_length=len(STATUSES))] = None,
    tags: Filter = "",
    since: Filter = "",
    text: Filter = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Executions newest first, filtered; ``Next page`` continues from the last one shown."""
    chosen = [s for s in status or [] if s]
    filters = forms.optional({"workflow": workflow, "tags": tags, "text": text}, "workflow", "tags", "text")
    args: dict[str, object] = {**filters, "limit": PAGE, "status": chosen or None}
    args["since"] = forms.utc_time(since, "since")
    missing = None
    try:
        listed = await c.run(ExecutionList, "execution.list", args | ({"cursor": cursor} if cursor else {}))
    except NotFound as exc:  # a workflow filter naming nothing: the form stays, with why the list is empty
        listed, missing = ExecutionList(executions=[], next_cursor=None), str(exc)
    query = [(k, v) for k, v in (("workflow", workflow), ("tags", tags), ("since", since), ("text", text)) if v]
    query += [("status", s) for s in chosen]
    more = urlencode([*query, ("cursor", listed.next_cursor)]) if listed.next_cursor else None
    return c.page(
        "executions.html",
        title="Executions",
        section="executions",
        executions=listed.executions,
        statuses=STATUSES,
        chosen=chosen,
        filters={"workflow": workflow, "tags": tags, "since": since, "text": text},
        next_page=f"?{more}" if more else None,
        paged=bool(cursor),
        missing=missing,
    )


async def _flaky(c: Console, detail: ExecutionDetail) -> set[tuple[str, str]]:
    """The tests of this execution's workflow that both passed and failed recently."""
    if detail.source != "run":
        return set()
    try:
        metrics = await c.run(MetricsOut, "workflow.metrics", {"name": detail.workflow})
    except NotFound:
        return set()  # the workflow was deleted since; its runs remain
    return {(f.classname, f.name) for f in metrics.flaky_tests}


def _outcomes(detail: ExecutionDetail, tests: list[str] | None) -> list[str]:
    """The outcomes to list: those chosen (none: all); unchosen, the failures when there are any."""
    if tests is not None:
        return [t for t in tests if t]
    return list(FAILURES) if detail.tests.failed or detail.tests.errored else []


def _results_link(shown: list[str], cursor: str | None = None) -> str:
    """The execution page listing ``shown`` outcomes (from ``cursor``), scrolled to its tests."""
    query = [("tests", s) for s in shown] or [("tests", "")]
    return f"?{urlencode(query + ([('cursor', cursor)] if cursor else []))}#results"


def _log_pages(log: LogPage) -> dict[str, str | None]:
    """Links to the log's first lines, and to the lines before and after those shown (``LOG_TAIL`` each)."""
    first = log.lines[0].seq if log.lines else log.next_seq
    earlier = first > 1
    return {
        "first": "?log_start=1#log" if earlier else None,
        "earlier": f"?log_start={max(1, first - LOG_TAIL)}#log" if earlier else None,
        "later": f"?log_start={log.next_seq}#log" if log.next_seq <= log.total_lines else None,
    }


@router.get("/executions/{id}", response_class=HTMLResponse)
async def execution(
    c: Con,
    id: ExecutionId,
    tests: Annotated[list[str] | None, Query(max_length=len(OUTCOMES) + 1)] = None,
    cursor: Annotated[str, Query(max_length=200)] = "",
    log_start: Annotated[int | None, Query(ge=1, le=MAX_KEY - LOG_TAIL)] = None,
) -> HTMLResponse:
    """One execution; while it runs, its log streams in (``logs/stream``), and the page reloads at the end.

    The log shows its last ``LOG_TAIL`` lines, or as many from line ``log_start`` on (pages of a long log).

    Its tests list failures first: unless ``tests`` names outcomes (an empty value: all of them), a run
    with failed or errored tests lists only those, a page at a time from ``cursor``.
    """
    detail = await c.run(ExecutionDetail, "execution.get", {"id": id})
    window = {"start": log_start, "end": log_start + LOG_TAIL - 1} if log_start else {"tail": LOG_TAIL}
    log = await c.run(LogPage, "execution.logs", {"id": detail.id, **window})
    finished = detail.status in TERMINAL
    results = artifacts = None
    flaky: set[tuple[str, str]] = set()
    shown = _outcomes(detail, tests)
    if finished:
        args = {"id": detail.id, "limit": RESULTS, "status": shown or None}
        results = await c.run(ResultsPage, "execution.results", args | ({"cursor": cursor} if cursor else {}))
        artifacts = await c.run(ArtifactList, "artifact.list", {"id": detail.id})
        flaky = await _flaky(c, detail) if results.results else set()
    recent = await c.run(ExecutionList, "execution.list", {"workflow": detail.workflow, "limit": RUNS})
    steps = {s.index: s.name for s in detail.steps}
    return c.page(
        "execution.html",
        title=f"{detail.workflow} #{detail.number}",
        section="executions",
        execution=detail,
        log=log,
        log_paged=log_start is not None,
        log_pages=_log_pages(log),
        steps=steps,
        finished=finished,
        results=results,
        outcomes=OUTCOMES,
        shown=shown or list(OUTCOMES),
        failures_only=sorted(shown) == sorted(FAILURES),
        results_next=_results_link(shown, results.next_cursor) if results and results.next_cursor else None,
        results_first=_results_link(shown) if cursor else None,
        artifacts=artifacts.artifacts if artifacts else [],
        flaky=flaky,
        chart=charts.history(recent.executions, lambda run: c.url("execution", run.id)),
        chart_name=detail.workflow,
        current=c.url("execution", detail.id),
        can_abort=c.can(Permission.RUN) and not finished,
        stream=f"{c.url('execution', detail.id)}/logs/stream",
    )


@router.post("/executions/{id}/abort")
async def abort(c: Con, id: ExecutionId) -> RedirectResponse:
    """Abort a queued or running execution; refused without run permission."""
    await c.form()
    stopped = await c.run(AbortOut, "execution.abort", {"id": id})
    return RedirectResponse(c.url("execution", stopped.id), status_code=303)
