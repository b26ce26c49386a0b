"""``testgate results``: upload JUnit XML from an external CI; the per-test results table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from testgate.cli import output
from testgate.cli.local import call
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Env, Org, Target, pairs
from testgate.errors import InvalidInput
from testgate.operations.models import ExecutionSummary
from testgate.platform import junit
from testgate.platform.results import CaseResult, ResultsPage

app = typer.Typer(help="Test results produced elsewhere (an external CI).", no_args_is_help=True)


def _message(case: CaseResult) -> str:
    lines = case.message.strip().splitlines()
    return lines[0] if lines else ""


def show_results(page: ResultsPage) -> None:
    """One row per test, then the execution's counts."""
    output.table(
        ["status", "suite", "test", "duration", "message"],
        [
            (
                output.status(c.status),
                c.suite,
                f"{c.classname}::{c.name}" if c.classname else c.name,
                output.duration(c.duration_ms),
                _message(c),
            )
            for c in page.results
        ],
    )
    counts = f"{page.passed} passed, {page.failed} failed, {page.skipped} skipped, {page.errored} errored"
    output.note(f"{page.total} tests: {counts}")
    if page.next_cursor:
        output.note("more results than shown: see --output json and next_cursor")


def _read(path: Path) -> dict[str, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="FILES") from None
    try:
        return {"name": path.name, "content": junit.report_text(data, path.name)}
    except InvalidInput as exc:
        raise typer.BadParameter(exc.message, param_hint="FILES") from None


@app.command()
def upload(
    files: Annotated[list[Path], typer.Argument(help="JUnit XML files.", show_default=False, dir_okay=False)],
    workflow: Annotated[str, typer.Option("--workflow", "-w", help="Name to file them under.", show_default=False)],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag for the execution: key=value.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Annotated[Format, OutputOption] = Format.table,
) -> None:
    """Record JUnit XML files as a new finished execution (passed when no test failed or errored)."""
    args = {"workflow": workflow, "files": [_read(f) for f in files], "tags": pairs(tag, "--tag")}
    created = call(Target(data_dir, org, env), "results.upload", args, ExecutionSummary)
    if fmt is Format.json:
        output.emit_json(created)
    else:
        t = created.tests
        output.out().print(
            f"[bold]{escape(created.workflow)}#{created.number}[/] ({created.id}) {output.status(created.status)} — "
            f"{t.total} tests: {t.passed} passed, {t.failed} failed, {t.skipped} skipped, {t.errored} errored",
            soft_wrap=True,
        )
