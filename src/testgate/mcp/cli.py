"""``testgate mcp``: serve MCP on stdio, and print the configuration each MCP client needs."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
import typer

from testgate import logconfig
from testgate.cli.params import DataDir, Env, Org, Target
from testgate.config import Settings
from testgate.mcp.config_snippets import LOCATIONS, Client, hosted_url, snippet, stdio_command
from testgate.mcp.stdio import serve_stdio

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
        "--url", help="A hosted MCP endpoint [default: this server's URL for --org/--env].", show_default=False
    ),
]
StdioOption = Annotated[bool, typer.Option("--stdio", help="Configure the local stdio server instead of a URL.")]
NameOption = Annotated[str, typer.Option("--name", help="The server's name in the client.")]


@app.command()
def serve(data_dir: DataDir = None, org: Org = None, env: Env = None) -> None:
    """Serve MCP on stdin/stdout, running the platform in this process as you (the local owner)."""
    settings = Target(data_dir, org, env).settings()
    # stdout is the MCP wire: logs go to stderr only.
    logconfig.configure(settings.log_format, settings.log_level)
    try:
        anyio.run(partial(serve_stdio, settings, organization=org, environment=env))
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
