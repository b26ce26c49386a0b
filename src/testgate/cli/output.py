"""Rendering for the CLI: Rich tables for people, ``--output json`` for machines, errors on stderr.

Stdout carries only the command's result (so it can be piped); messages, prompts and errors go to
stderr. Text that comes from users or tests (names, log lines, messages) is never parsed as Rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from testgate.config import env_variable
from testgate.errors import InvalidInput, TestgateError, validation_message

err = Console(stderr=True, highlight=False)
PIPE_WIDTH = 10_000


def out() -> Console:
    """Stdout as it is now: a terminal's own width; piped output is never squeezed (ids stay whole)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


class Format(StrEnum):
    table = "table"
    json = "json"


class Markup(str):
    """Rich markup whose user parts are already escaped; tables show it as it is."""

    __slots__ = ()


OutputOption = typer.Option("--output", "-o", help="table for people, json for scripts.")


def emit_json(model: BaseModel | Mapping[str, Any] | Sequence[Any]) -> None:
    """Print machine-readable JSON: the operation's output model as ``model_dump(mode="json")``."""
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo(text: str) -> None:
    """One line of user content (a log line, a definition) exactly as it is."""
    typer.echo(text)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table on stdout; cells fold rather than lose characters."""
    grid = Table(show_edge=False, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(cell_text(cell) for cell in row))
    out().print(grid)


def cell_text(value: Any) -> str:
    """A table cell: times in UTC to the second, mappings as k=v, nothing interpreted as markup."""
    if value is None:
        return "-"
    if isinstance(value, Markup):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Mapping):
        return escape(",".join(f"{k}={v}" for k, v in value.items())) or "-"
    if isinstance(value, list | tuple):
        return escape(", ".join(str(v) for v in value)) or "-"
    return escape(str(value))


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """A two-column ``name  value`` block, for one resource."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(name, cell_text(value))
    out().print(grid)


def note(message: str) -> None:
    """A message for the person at the terminal (stderr), given as Rich markup."""
    err.print(message, soft_wrap=True)


def warn(message: str) -> None:
    """A warning on stderr (plain text, not markup)."""
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def error(exc: TestgateError) -> None:
    """A domain error in red; invalid input lists each field path on its own line."""
    err.print(f"[bold red]error:[/] {escape(exc.message)}", soft_wrap=True)
    if isinstance(exc, InvalidInput):
        for problem in exc.errors:
            err.print(f"  [red]{escape(problem.path or '-')}[/]: {escape(problem.message)}", soft_wrap=True)


def invalid_settings(exc: ValidationError) -> None:
    """A configuration that failed validation: each setting by name and environment variable, with the
    reason but without pydantic's copy of the input (it may be a secret)."""
    err.print("[bold red]error:[/] the configuration is invalid; nothing was started", soft_wrap=True)
    for problem in exc.errors(include_input=False, include_url=False):
        path = [str(part) for part in problem["loc"]]
        variable = env_variable(*path)
        reason = validation_message(problem)
        err.print(f"  [red]{escape('.'.join(path))}[/] ({escape(variable)}): {escape(reason)}", soft_wrap=True)


def invalid_setting(variable: str, reason: str) -> None:
    """A setting that could not be read at all (a secret file, an undecodable list): its variable and why."""
    err.print("[bold red]error:[/] the configuration is invalid; nothing was started", soft_wrap=True)
    err.print(f"  [red]{escape(variable)}[/]: {escape(reason)}", soft_wrap=True)


def duration(ms: int | None) -> str:
    """``850ms``, ``12.3s``, ``4m05s``."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "errored": "red",
    "aborted": "yellow",
    "timed_out": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "queued": "dim",
    "active": "green",
    "expired": "yellow",
    "revoked": "red",
    "allowed": "green",  # audit outcomes
    "denied": "red",
    "error": "red",
}


def status(value: str) -> Markup:
    """A status word, coloured."""
    style = STATUS_STYLE.get(value, "")
    return Markup(f"[{style}]{escape(value)}[/]" if style else escape(value))
