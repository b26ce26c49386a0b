"""``testgate config``: what testgate can be configured with."""

from __future__ import annotations

import typer

from testgate.settings_doc import reference as render_reference

app = typer.Typer(help="Settings: the configuration reference.", no_args_is_help=True)


@app.command("reference")
def reference() -> None:
    """Print every setting (environment variable, default, secret or not) as Markdown."""
    typer.echo(render_reference(), nl=False)
