"""``testgate workflow``: apply YAML, list, inspect, run and delete workflows.

``workflow run`` exits 0 when the execution passed, 1 when it failed, 2 when it was aborted or timed
out, and 130 on Ctrl-C (which aborts the execution first).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Annotated

import typer
from rich.markup import escape

from testgate.cli import definition, follow, output
from testgate.cli.local import Local, call, connect, run
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Env, Org, Target, Yes, pairs
from testgate.errors import TestgateError
from testgate.operations.executions import AbortOut, WaitOut
from testgate.operations.models import Deleted
from testgate.operations.workflows import Definition, RunOut, Saved, SchemaOut, WorkflowDetail, WorkflowList

app = typer.Typer(help="Workflows: apply YAML, list, inspect, run and delete.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The workflow's metadata.name.", show_default=False)]
Output = Annotated[Format, OutputOption]


@app.command()
def apply(
    file: Annotated[str, typer.Option("--file", "-f", help="The YAML file, or - for stdin.", show_default=False)],
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
) -> None:
    """Create a workflow from a YAML file, or replace its definition if the name exists."""
    text, base = definition.read(file)
    args = {"definition": definition.resolve_directory(text, base)}
    saved = call(Target(data_dir, org, env), "workflow.apply", args, Saved)
    output.note(f"workflow [bold]{escape(saved.name)}[/] {'created' if saved.created else 'updated'}")


@app.command("list")
def list_(
    selector: Annotated[str | None, typer.Option("--selector", "-l", help="Labels: 'team=qa,tier'.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
    fmt: Output = Format.table,
) -> None:
    """List the environment's workflows with their latest execution."""
    args = {"selector": selector} if selector else {}
    found = call(Target(data_dir, org, env), "workflow.list", args, WorkflowList)
    if fmt is Format.json:
        return output.emit_json(found)
    rows = []
    for w in found.workflows:
        last = w.last_execution
        latest = output.Markup(f"#{last.number} {output.status(last.status)}") if last else None
        rows.append((w.name, w.labels, w.steps, w.executions, latest, w.updated_at))
    output.table(["name", "labels", "steps", "runs", "latest", "updated"], rows)


@app.command()
def get(name: Name, data_dir: DataDir = None, org: Org = None, env: Env = None, fmt: Output = Format.table) -> None:
    """Show one workflow: labels, config parameters, steps and latest execution."""
    found = call(Target(data_dir, org, env), "workflow.get", {"name": name}, WorkflowDetail)
    if fmt is Format.json:
        return output.emit_json(found)
    last = found.last_execution
    params = [
        f"{p.name}: {p.type}"
        + (" (sensitive)" if p.sensitive else f" = {json.dumps(p.default)}" if p.default is not None else "")
        for p in found.config_parameters
    ]
    output.fields(
        [
            ("name", found.name),
            ("description", found.description or None),
            ("labels", found.labels),
            ("config", params),
            ("steps", found.step_names),
            ("executions", found.executions),
            ("latest", f"#{last.number} {last.status}" if last else None),
            ("updated", found.updated_at),
            ("console", found.dashboard_url),
        ]
    )


@app.command("definition")
def definition_(name: Name, data_dir: DataDir = None, org: Org = None, env: Env = None) -> None:
    """Print a workflow's YAML exactly as it was last applied."""
    found = call(Target(data_dir, org, env), "workflow.definition", {"name": name}, Definition)
    output.echo(found.definition.rstrip("\n"))


@app.command()
def schema(data_dir: DataDir = None, org: Org = None, env: Env = None) -> None:
    """Print the JSON Schema of a workflow document."""
    found = call(Target(data_dir, org, env), "workflow.schema", {}, SchemaOut)
    output.echo(json.dumps(found.json_schema, indent=2))


@app.command()
def delete(
    name: Name,
    with_executions: Annotated[
        bool, typer.Option("--with-executions", help="Also delete its executions, logs, artifacts and results.")
    ] = False,
    yes: Yes = False,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
) -> None:
    """Delete a workflow (asks first; --yes to confirm in scripts)."""
    args = {"name": name, "delete_executions": with_executions}
    result = call(Target(data_dir, org, env), "workflow.delete", args, Deleted, yes=yes)
    output.note(escape(result.message))
    if not result.deleted:
        raise typer.Exit(1)


@app.command("run")
def run_(
    name: Name,
    config: Annotated[list[str] | None, typer.Option("--config", "-c", help="A config value: key=value.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag for the execution: key=value.")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Stream the live logs while it runs.")] = False,
    data_dir: DataDir = None,
    org: Org = None,
    env: Env = None,
) -> None:
    """Run a workflow here and wait for it; exit 0 passed, 1 failed, 2 aborted or timed out, 130 Ctrl-C.

    The execution runs inside this process (there is no control plane login), so the command waits
    for it to finish; Ctrl-C aborts it.
    """
    args = {"name": name, "config": pairs(config, "--config"), "tags": pairs(tag, "--tag")}
    code = run(_run(Target(data_dir, org, env), args, watch))
    raise typer.Exit(code)


async def _run(target: Target, args: Mapping[str, object], watch: bool) -> int:
    async with connect(target, executor=True) as client:
        started = await client.op("workflow.run", args, RunOut)
        output.note(
            f"started [bold]{escape(started.workflow)}#{started.number}[/] ({started.id}); "
            "it runs in this process — Ctrl-C aborts it"
        )
        try:
            await _finish(client, started.id, watch)
        except asyncio.CancelledError:
            await _abort(client, started.id)
            raise
        final = await follow.detail(client, started.id)
        follow.show_summary(final, await follow.failures(client, started.id))
        return follow.exit_code(final.status)


async def _finish(client: Local, execution_id: str, watch: bool) -> None:
    if watch:
        await follow.stream(client, execution_id)
        return
    with output.err.status("running…"):
        finished = False
        while not finished:
            waited = await client.op("execution.wait", {"ids": [execution_id], "timeout": 900}, WaitOut)
            finished = waited.finished


async def _abort(client: Local, execution_id: str) -> None:
    try:
        aborted = await client.op("execution.abort", {"id": execution_id}, AbortOut)
    except TestgateError as exc:  # e.g. it finished in the meantime
        output.error(exc)
        return
    output.note(f"[yellow]{escape(aborted.message)}[/]")
