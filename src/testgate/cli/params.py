"""Options shared by the CLI's commands, and parsing of ``key=value`` arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from testgate.config import Settings

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The embedded database's directory (default: $TESTGATE_DATA_DIR, else ~/.local/share/testgate).",
        file_okay=False,
        show_default=False,
    ),
]
Org = Annotated[
    str | None,
    typer.Option(
        "--org", help="Organization (default: $TESTGATE_DEFAULT_ORGANIZATION, else 'default').", show_default=False
    ),
]
Env = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", help="Environment (default: $TESTGATE_DEFAULT_ENVIRONMENT, else 'dev').", show_default=False
    ),
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Confirm a destructive action without asking.")]


@dataclass(frozen=True)
class Target:
    """Where a command acts: the data directory, organization and environment it was given."""

    data_dir: Path | None = None
    organization: str | None = None
    environment: str | None = None

    def settings(self) -> Settings:
        """Settings from the environment (``TESTGATE_*``), with ``--data-dir`` taking precedence."""
        return Settings(data_dir=self.data_dir) if self.data_dir is not None else Settings()


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a usage error (exit 2) names the bad one."""
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint=option)
        result[key.strip()] = value
    return result
