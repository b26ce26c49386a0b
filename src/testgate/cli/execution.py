"""``testgate execution``: list, inspect, read logs of, wait for and abort executions; per-test results.

``execution wait`` exits 0 when every execution passed, 1 when one failed, 2 when one was aborted or
timed out (the worst wins), and 124 when the wait itself timed out first.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated

import typer
from rich.markup import escape

from testgate.cli import follow, output
from testgate.cli.local import call, connect, run
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Env, Org, Target
from testgate.cli.results import show_results
from testgate.operations.executions import AbortOut, ExecutionList, WaitOut
from testgate.operations.models import ExecutionDetail, ExecutionSummary
from testgate.platform.logs import LogPage
from testgate.platform.results import ResultsPage

app = typer.Typer(help="Executions: list, inspect, logs, results, wait and abort.", no_args_is_help=True)

Id = Annotated[str, typer.Argument(help="An execution id, or workflow#number (e.g. smoke#3).", show_default=False)]
Output = Annotated[Format, OutputOption]
EXIT_WAIT_TIMED_OUT = 124
MAX_WAIT_CALL = 900.0


def _tests(summary: ExecutionSummary) -> str:
    t = summary.tests
    return f"{t.passed}/{t.total}" + (f" ({t.failed + t.errored} failed)" if t.failed + t.errored else "")


def _rows(items: list[ExecutionSummary]) -> list[tuple[object, ...]]:
    return [
        (
            e.id,
            f"{e.workflow}#{e.number}",
            output.status(e.status),
            _tests(e),
            e.created_at,
            output.duration(e.duration_ms),
            e.tags,
        )
        for e in items
    ]


@app.command("list")
def list_(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Only this workflow's.")] = None,
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="queued, running, passed, …")] = None,
    tags: Annotated[str | None, typer.Option("--tags", help="Tag selector: 'branch=main,nightly'.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="Page size.")] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Output = Format.table,
) -> None:
    """List executions, newest first."""
    statuses = [s.strip() for item in status or [] for s in item.split(",") if s.strip()]
    args = {"workflow": workflow, "status": statuses or None, "tags": tags, "limit": limit, "cursor": cursor}
    page = call(Target(data_dir, org, env), "execution.list", args, ExecutionList)
    if fmt is Format.json:
        return output.emit_json(page)
    output.table(["id", "execution", "status", "tests", "created", "duration", "tags"], _rows(page.executions))
    if page.next_cursor:
        output.note(f"more: --cursor {escape(page.next_cursor)}")


@app.command()
def get(id: Id, data_dir: DataDir = None, org: Org = None, env: Env = None, fmt: Output = Format.table) -> None:
    """Show one execution: status, reason, steps, config, tags and test counts."""
    found = call(Target(data_dir, org, env), "execution.get", {"id": id}, ExecutionDetail)
    if fmt is Format.json:
        return output.emit_json(found)
    output.fields(
        [
            ("id", found.id),
            ("execution", f"{found.workflow}#{found.number}"),
            ("status", output.status(found.status)),
            ("reason", found.reason or None),
            ("source", found.source),
            ("created", found.created_at),
            ("duration", output.duration(found.duration_ms)),
            ("tests", _tests(found)),
            ("config", found.config),
            ("tags", found.tags),
            ("log lines", found.log_lines),
            ("console", found.dashboard_url),
        ]
    )
    steps = [
        (s.index, s.name, output.status(s.status), s.exit_code, output.duration(s.duration_ms)) for s in found.steps
    ]
    if steps:
        output.table(["#", "step", "status", "exit", "duration"], steps)


@app.command()
def logs(
    id: Id,
    tail: Annotated[int, typer.Option("--tail", "-n", min=1, max=5000, help="The last N lines.")] = 100,
    grep: Annotated[
        str | None, typer.Option("--grep", "-g", help="Only lines matching this regex (RE2 syntax).")
    ] = None,
    step: Annotated[
        int | None, typer.Option("--step", min=-1, help="Only step N's lines (0 is the first; -1 the runner's own).")
    ] = None,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until it ends.")] = False,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Output = Format.table,
) -> None:
    """Print an execution's log (the last 100 lines by default)."""
    if follow_ and (grep or fmt is Format.json):
        raise typer.BadParameter("--follow cannot be combined with --grep or --output json", param_hint="--follow")
    args = {"id": id, "tail": tail, "grep": grep, "step": step}
    run(_logs(Target(data_dir, org, env), args, follow_, fmt))


async def _logs(target: Target, args: Mapping[str, object], keep_following: bool, fmt: Format) -> None:
    async with connect(target) as client:
        page = await client.op("execution.logs", args, LogPage)
        if fmt is Format.json:
            return output.emit_json(page)
        for line in page.lines:
            output.echo(line.text if args["grep"] is None else f"{line.seq}: {line.text}")
        if page.truncated:
            output.warn("output cut to a bounded page; narrow it with --tail, --step or --grep")
        if keep_following:
            await follow.stream(client, page.execution_id, after=page.next_seq - 1)


@app.command()
def abort(id: Id, data_dir: DataDir = None, org: Org = None, env: Env = None) -> None:
    """Abort a queued or running execution."""

    async def go() -> AbortOut:
        async with connect(Target(data_dir, org, env), executor=True) as client:
            return await client.op("execution.abort", {"id": id}, AbortOut)

    output.note(escape(run(go()).message))


@app.command()
def results(
    id: Id,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed and errored tests.")] = False,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Output = Format.table,
) -> None:
    """Per-test results of an execution (parsed from its JUnit XML)."""
    args = {"id": id, "status": ["failed", "errored"] if failed else None, "limit": 500}
    page = call(Target(data_dir, org, env), "execution.results", args, ResultsPage)
    if fmt is Format.json:
        return output.emit_json(page)
    show_results(page)


@app.command()
def wait(
    ids: Annotated[list[str], typer.Argument(help="Execution ids or workflow#number.", show_default=False)],
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds to wait at most.")] = 600.0,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Output = Format.table,
) -> None:
    """Wait for executions to finish; exit 0 all passed, 1 one failed, 2 one aborted or timed out, 124 too long."""
    waited = run(_wait(Target(data_dir, org, env), ids, timeout))
    if fmt is Format.json:
        output.emit_json(waited)
    else:
        output.table(["id", "execution", "status", "tests", "created", "duration", "tags"], _rows(waited.executions))
    if waited.timed_out:
        raise typer.Exit(EXIT_WAIT_TIMED_OUT)
    raise typer.Exit(max(follow.exit_code(e.status) for e in waited.executions))


async def _wait(target: Target, ids: list[str], timeout: float) -> WaitOut:
    deadline = time.monotonic() + timeout
    async with connect(target) as client:
        while True:
            left = max(deadline - time.monotonic(), 0.1)
            waited = await client.op("execution.wait", {"ids": ids, "timeout": min(left, MAX_WAIT_CALL)}, WaitOut)
            if waited.finished or time.monotonic() >= deadline:
                return waited
