"""``testgate mcp``: serve MCP on stdio, and print the configuration each MCP client needs."""

from __future__ import annotations

import os
import sys
from functools import partial
from typing import Annotated
from urllib.parse import urlsplit

import anyio
import typer

from testgate import logconfig
from testgate.cli.credentials import CredentialStore
from testgate.cli.login import CaBundle
from testgate.cli.output import error
from testgate.cli.params import DataDir, Env, Org, Target
from testgate.config import Settings
from testgate.errors import NotFound, StorageUnavailable, Unauthenticated
from testgate.ids import is_slug
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
    except StorageUnavailable as exc:  # the database cannot be used: said before the client's handshake
        error(exc)
        raise typer.Exit(1) from None
    except NotFound as exc:  # --org/--env naming nothing on a database that has organizations already
        hint = "`testgate environment list` shows them, `testgate environment create` adds one"
        error(NotFound(f"{exc.message}; {hint}"))
        raise typer.Exit(2) from None
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
    for option, value in (("--org", org), ("--env", env)):
        if value is not None and not is_slug(value):
            raise typer.BadParameter("must be a slug: lowercase letters, digits and inner '-'", param_hint=option)
    if stdio:
        text = snippet(client, name=name, command=stdio_command(org, env))
    else:
        text = snippet(client, name=name, url=_hosted(url, org, env))
    typer.echo(text)
    typer.echo(f"# {LOCATIONS[client]}", err=True)


def _hosted(url: str | None, org: str | None, env: str | None) -> str:
    """The endpoint a snippet names: --url as given, else the environment at the server you logged in to
    (``testgate login``), else at this server's own URL."""
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise typer.BadParameter("must be an http(s):// URL of a hosted MCP endpoint", param_hint="--url")
        return url
    settings = Settings()
    login = CredentialStore(settings.config_dir).context()
    if login is None:
        return hosted_url(settings.base_url, org or settings.default_organization, env or settings.default_environment)
    if org is None and env is None:
        return login.resource
    return hosted_url(login.server, org or login.organization, env or login.environment)
