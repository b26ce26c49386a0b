"""The ``testgate`` command: a thin shell over the platform's operations.

With no control plane login, commands run the platform in this process on the embedded database,
as the local owner. Exit codes: 0 success; 1 a domain error (printed in red, no traceback) or a failed
run; 2 a usage error, an invalid setting, or a run that was aborted or timed out; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from testgate import __version__, logconfig
from testgate.cli import (
    config,
    db,
    environment,
    execution,
    login,
    member,
    output,
    results,
    serve,
    token,
    worker,
    workflow,
)
from testgate.config import Settings
from testgate.config_checks import SettingError

app = typer.Typer(
    name="testgate",
    help="testgate: run, watch and analyse your team's tests — from here, the REST API or any MCP client.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"testgate {__version__}")
        raise typer.Exit


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Test orchestration with a secure MCP front door."""


app.command("serve")(serve.serve)
app.command("worker")(worker.worker)
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("whoami")(login.whoami)
app.add_typer(workflow.app, name="workflow")
app.add_typer(execution.app, name="execution")
app.add_typer(results.app, name="results")
app.add_typer(token.app, name="token")
app.add_typer(member.app, name="member")
app.add_typer(environment.app, name="environment")
app.add_typer(db.app, name="db")
app.add_typer(config.app, name="config")


# Command groups owned by other packages, added when present: (module, name).
OPTIONAL_GROUPS = (("testgate.cli.audit", "audit"), ("testgate.mcp.cli", "mcp"))


def _add_optional_groups() -> None:
    """``testgate audit …`` and ``testgate mcp …`` come from their own modules when they are installed."""
    for module, name in OPTIONAL_GROUPS:
        if importlib.util.find_spec(module) is None:
            continue
        group = importlib.import_module(module).app
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=name)


_add_optional_groups()


JSON_EXAMPLES = '["a", "b"], {"dev": "run"}'


def main() -> None:
    """Console script entry point: logs to stderr (warnings and up), then the command.

    A setting that fails validation (an environment variable, a secret file, a flag) ends the command
    with its name and the reason, exit code 2, and no traceback; pydantic's copy of the input is left
    out (it may be a secret).
    """
    logconfig.configure("auto", "WARNING")
    try:
        app()
    except ValidationError as exc:
        if exc.title != Settings.__name__:
            raise
        output.invalid_settings(exc)
        sys.exit(2)
    except SettingError as exc:
        output.invalid_setting(exc.variable, exc.reason)
        sys.exit(2)
    except SettingsError as exc:
        # pydantic-settings could not decode a list or map given in the environment (its message names the
        # field, not the value).
        output.invalid_setting("a TESTGATE_ variable", f"{exc}; lists and maps are given as JSON: {JSON_EXAMPLES}")
        sys.exit(2)
