"""``testgate worker``: a Celery worker that runs executions from the broker against the shared store.

A thin shell over ``testgate.runner.worker.run_worker``: settings come from the environment
(``TESTGATE_DATABASE_URL``, ``TESTGATE_CELERY__BROKER_URL``, ``TESTGATE_CELERY__SECRETS_KEY``…).
"""

from __future__ import annotations

from typing import Annotated

import typer

from testgate import logconfig
from testgate.cli import output
from testgate.cli.params import DataDir
from testgate.config import Settings
from testgate.errors import RunnerError


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            max=256,
            help="Executions run at once, one pool process each (default: $TESTGATE_RUNNER__CONCURRENCY, else 4).",
            show_default=False,
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            "-l",
            help="A label workflows can target with spec.target.match, as key=value (repeatable, at most 4).",
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            "--queues",
            "-Q",
            help="Comma-separated queue names to consume instead of those derived from the labels.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            help="The worker's node name, name@host (default: testgate-<pid>@<host>).",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Run executions sent by the control plane (the celery executor) on this machine."""
    from testgate.runner.celery_app import parse_labels
    from testgate.runner.worker import run_worker

    settings = Settings(data_dir=data_dir) if data_dir is not None else Settings()
    logconfig.configure(settings.log_format, settings.log_level)
    try:
        labels = parse_labels(label or [])
    except RunnerError as exc:
        raise typer.BadParameter(exc.message, param_hint="--label") from None
    chosen = [q.strip() for q in (queues or "").split(",") if q.strip()]
    try:
        code = run_worker(
            settings, labels, concurrency or settings.runner.concurrency, queues=chosen or None, name=name
        )
    except RunnerError as exc:
        output.error(exc)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
