"""``testgate environment``: the organization's environments, through ``dispatch`` as the local owner.

An environment holds its own workflows, executions and test cases, and has its own MCP endpoint. Owners
and admins reach a new one at once; members need a grant (``testgate member grant USER ENV:PERMISSION``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from testgate.cli import output
from testgate.cli.local import call
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Org, Target
from testgate.operations.environments import EnvironmentInfo, EnvironmentList

app = typer.Typer(help="Environments: list, create, rename.", no_args_is_help=True)

Output = Annotated[Format, OutputOption]
Slug = Annotated[
    str,
    typer.Argument(metavar="ENV", help="The environment's slug (lowercase letters, digits, '-').", show_default=False),
]


def _show(env: EnvironmentInfo, fmt: Format, message: str) -> None:
    if fmt is Format.json:
        return output.emit_json(env)
    output.note(f"{escape(env.slug)} ({escape(env.name)}) {message}")
    output.note(f"MCP endpoint: {escape(env.mcp_url)}")


@app.command("list")
def list_(data_dir: DataDir = None, org: Org = None, fmt: Output = Format.table) -> None:
    """List the environments, with their MCP endpoints."""
    found = call(Target(data_dir, org), "environment.list", {}, EnvironmentList)
    if fmt is Format.json:
        return output.emit_json(found)
    output.table(
        ["env", "name", "created", "MCP endpoint"],
        [(e.slug, e.name, e.created_at, e.mcp_url) for e in found.environments],
    )


@app.command()
def create(
    slug: Slug,
    name: Annotated[str | None, typer.Option("--name", help="Display name (default: the slug).")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Create an environment; grant members access with `testgate member grant`."""
    args = {"slug": slug} | ({"name": name} if name is not None else {})
    _show(call(Target(data_dir, org), "environment.create", args, EnvironmentInfo), fmt, "created")


@app.command()
def rename(
    slug: Slug,
    name: Annotated[str, typer.Argument(help="The new display name.", show_default=False)],
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Change an environment's display name (its slug, and every URL, stays)."""
    args = {"slug": slug, "name": name}
    _show(call(Target(data_dir, org), "environment.rename", args, EnvironmentInfo), fmt, "renamed")
