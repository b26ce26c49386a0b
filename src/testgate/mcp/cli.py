"""``testgate mcp``: serve MCP on stdio, and print the configuration each MCP client needs."""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Annotated

import anyio
import typer

from testgate import logconfig
from testgate.cli.login import CaBundle
from testgate.cli.output import error
from testgate.cli.params import DataDir, Env, Org, Target
from testgate.config import Settings
from testgate.errors import Unauthenticated
from testgate.mcp.config_snippets import LOCATIONS, Client, hosted_url, snippet, stdio_command

EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="mcp",
    help="The MCP server: serve it on stdio, or print a client's configuration for it.",
    no_args_is_help=True,
)

ClientOption = Annotated[Client, typer.Option("--client", help="The MCP client to configure.")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="A hosted MCP endpoint (default: this server's URL for --org/--env).", show_default=False
    ),
]
StdioOption = Annotated[bool, typer.Option("--stdio", help="Configure the local stdio server instead of a URL.")]
NameOption = Annotated[str, typer.Option("--name", help="The server's name in the client.")]
LocalOption = Annotated[bool, typer.Option("--local", help="Run the platform in this process even when logged in.")]


@app.command()
def serve(
    data_dir: DataDir = None, org: Org = None, env: Env = None, local: LocalOption = False, ca_bundle: CaBundle = None
) -> None:
    """Serve MCP on stdio: bridged to your server after `testgate login` (or $TESTGATE_TOKEN), else in-process."""
    # Imported here: the MCP client and server take half a second to import, which every other command spares.
    from testgate.mcp import bridge
    from testgate.mcp.stdio import serve_stdio

    settings = Target(data_dir, org, env).settings()
    # stdout is the MCP wire: logs go to stderr only.
    logconfig.configure(settings.log_format, settings.log_level)
    try:
        # The environment is read here, at the edge: TESTGATE_TOKEN never appears on a command line.
        chosen = None if local else bridge.plan(settings, os.environ, org, env, ca_bundle)
    except Unauthenticated as exc:
        error(exc)
        raise typer.Exit(2) from None
    try:
        if chosen is None:
            anyio.run(partial(serve_stdio, settings, organization=org, environment=env))
        elif code := bridge.run(chosen):
            # The SDK's stdin reader may still block in a worker thread, which would keep a failed bridge alive.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


@app.command("config")
def config(
    client: ClientOption,
    url: UrlOption = None,
    stdio: StdioOption = False,
    org: Org = None,
    env: Env = None,
    name: NameOption = "testgate",
) -> None:
    """Print the snippet that adds testgate to an MCP client (the token stays in $TESTGATE_TOKEN)."""
    if url and stdio:
        raise typer.BadParameter("give either --url or --stdio", param_hint="--url/--stdio")
    if stdio:
        text = snippet(client, name=name, command=stdio_command(org, env))
    else:
        settings = Settings()
        target = url or hosted_url(
            settings.base_url, org or settings.default_organization, env or settings.default_environment
        )
        text = snippet(client, name=name, url=target)
    typer.echo(text)
    typer.echo(f"# {LOCATIONS[client]}", err=True)
