"""Following an execution: live log lines (the runner marks step boundaries), then its summary and exit code.

Exit codes of a followed run: 0 passed, 1 failed, 2 aborted or timed out.
"""

from __future__ import annotations

from rich.markup import escape

from testgate.cli import output
from testgate.cli.local import Local
from testgate.operations.models import ExecutionDetail
from testgate.platform.executions import TERMINAL
from testgate.platform.logs import LogPage
from testgate.platform.results import CaseResult, ResultsPage

EXIT_CODES = {"passed": 0, "failed": 1, "aborted": 2, "timed_out": 2}
# Wakes are in-process notifications; this bounds a wait when another process runs the execution.
RECHECK_SECONDS = 2.0


def exit_code(status: str) -> int:
    """0 passed, 1 failed, 2 aborted or timed out (and anything unexpected)."""
    return EXIT_CODES.get(status, 2)


async def detail(client: Local, execution_id: str) -> ExecutionDetail:
    """The execution as ``get_execution`` shows it."""
    return await client.op("execution.get", {"id": execution_id}, ExecutionDetail)


async def stream(client: Local, execution_id: str, *, after: int = 0) -> str:
    """Print lines after ``after`` as they are committed until the execution finishes; its final status."""
    events = client.platform.events
    final: str | None = None
    while True:
        seen = events.snapshot([execution_id])
        page = await client.op("execution.logs", {"id": execution_id, "start": after + 1}, LogPage)
        for line in page.lines:
            output.echo(line.text)
        after = max(after, page.next_seq - 1)
        if page.lines:
            continue
        if final is not None:
            return final
        status = (await detail(client, execution_id)).status
        if status in TERMINAL:
            # Lines are committed before the final status: one more read drains them all.
            final = status
            continue
        await events.wait_any(seen, RECHECK_SECONDS)


async def failures(client: Local, execution_id: str) -> ResultsPage:
    """The first page of its failed and errored tests, without traces."""
    args = {"id": execution_id, "status": ["failed", "errored"], "include_trace": False, "limit": 100}
    return await client.op("execution.results", args, ResultsPage)


def _case_line(case: CaseResult) -> str:
    name = f"{case.classname}::{case.name}" if case.classname else case.name
    message = case.message.strip().splitlines()[0] if case.message.strip() else ""
    tail = f" — {escape(message)}" if message else ""
    return f"  {output.status(case.status)} {escape(name)}{tail}"


def show_summary(run: ExecutionDetail, failed: ResultsPage) -> None:
    """Steps, the final status with test counts, and each failed test with its message."""
    output.table(
        ["#", "step", "status", "exit", "duration"],
        [(s.index, s.name, output.status(s.status), s.exit_code, output.duration(s.duration_ms)) for s in run.steps],
    )
    tests, console = run.tests, output.out()
    console.print(
        f"[bold]{escape(run.workflow)}#{run.number}[/] {output.status(run.status)} "
        f"in {output.duration(run.duration_ms)} — tests: {tests.total} total, {tests.passed} passed, "
        f"{tests.failed} failed, {tests.skipped} skipped, {tests.errored} errored",
        soft_wrap=True,
    )
    if run.reason:
        console.print(f"reason: {escape(run.reason)}", soft_wrap=True)
    if failed.results:
        console.print("[bold]failed tests:[/]")
        for case in failed.results:
            console.print(_case_line(case), soft_wrap=True)
        if failed.next_cursor:
            console.print(f"  … and more: testgate execution results {run.id} --failed", soft_wrap=True)
