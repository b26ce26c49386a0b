"""``testgate audit``: list, export, verify and purge the audit log (as the local owner, audited)."""

from __future__ import annotations

import errno
import os
import stat
import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from rich.markup import escape

from testgate.audit import export
from testgate.cli import output
from testgate.cli.local import call, connect, run
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Org, Target, Yes
from testgate.operations.audit import AuditEventList, ExportPlan, PurgeOut, VerifyOut

app = typer.Typer(help="The audit log: list, export, verify and purge.", no_args_is_help=True)

_TIMES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
Since = Annotated[datetime | None, typer.Option("--since", help="Events at or after this time (UTC).", formats=_TIMES)]
Until = Annotated[datetime | None, typer.Option("--until", help="Events before this time (UTC).", formats=_TIMES)]
EnvFilter = Annotated[str | None, typer.Option("--env", "-e", help="Only events in this environment.")]
Actor = Annotated[str | None, typer.Option("--actor", help="Only this actor (id or name).")]
Action = Annotated[
    str | None, typer.Option("--action", help="Only this action, or a prefix ending in '.' ('workflow.').")
]
Outcome = Annotated[str | None, typer.Option("--outcome", help="Only allowed, denied or error.")]
Output = Annotated[Format, OutputOption]
# Audit exports carry who did what: only their owner may read the file.
_EXPORT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


def _filters(
    since: datetime | None,
    until: datetime | None,
    env: str | None,
    actor: str | None,
    action: str | None,
    outcome: str | None,
) -> dict[str, Any]:
    values = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "environment": env,
        "actor": actor,
        "action": action,
        "outcome": outcome,
    }
    return {k: v for k, v in values.items() if v is not None}


@app.command("list")
def list_(
    since: Since = None,
    until: Until = None,
    env: EnvFilter = None,
    actor: Actor = None,
    action: Action = None,
    outcome: Outcome = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="Events per page.")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="next_cursor of the previous page.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """List audit events, newest first: who did what, where, when, with which outcome."""
    args = _filters(since, until, env, actor, action, outcome) | {"limit": limit}
    if cursor:
        args["cursor"] = cursor
    found = call(Target(data_dir, org), "audit.list", args, AuditEventList)
    if fmt is Format.json:
        return output.emit_json(found)
    output.table(
        ["seq", "time", "actor", "via", "action", "env", "outcome", "reason"],
        [
            (e.seq, e.time, _actor(e.actor.type, e.actor.name), e.transport, e.action, e.environment,
             output.status(e.outcome), e.reason)
            for e in found.events
        ],
    )  # fmt: skip
    if found.next_cursor:
        output.note(f"more events: --cursor {escape(found.next_cursor)}")


def _actor(kind: str, name: str) -> str:
    """``token:ci-bot``; a name that already says its kind (``local:root``) is shown as it is."""
    return name if name.startswith(f"{kind}:") else f"{kind}:{name}"


class ExportFormat(StrEnum):
    """What ``audit export`` writes (a usage error, exit 2, for anything else)."""

    JSONL = "jsonl"
    CSV = "csv"
    OCSF = "ocsf"


@app.command("export")
def export_(
    fmt: Annotated[ExportFormat, typer.Option("--format", "-F", help="The file's format.")] = ExportFormat.JSONL,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write here (mode 0600) instead of stdout.", dir_okay=False)
    ] = None,
    since: Since = None,
    until: Until = None,
    env: EnvFilter = None,
    actor: Actor = None,
    action: Action = None,
    outcome: Outcome = None,
    data_dir: DataDir = None,
    org: Org = None,
) -> None:
    """Export audit events, oldest first, as JSON Lines, CSV or OCSF (streamed)."""
    args = _filters(since, until, env, actor, action, outcome) | {"format": fmt.value}
    with _ExportFile(file) as out:
        run(_export(Target(data_dir, org), args, out))
    if file is not None:
        output.note(f"exported to {escape(str(file))}")


async def _export(target: Target, args: dict[str, Any], out: _ExportFile) -> None:
    async with connect(target) as client:
        # Authorized and audited first; only then is a single event read.
        plan = await client.op("audit.export", args, ExportPlan)
        chunks = export.stream(client.platform.db, plan.organization_id, plan.format, plan.filters())
        with out.start() as stream:
            async for chunk in chunks:
                stream.write(chunk)


class _ExportFile:
    """Where an export goes: stdout, or a file opened before the export is asked for.

    A path that cannot be written (a missing directory, a symlink, no permission) ends the command before
    the export is authorized and audited. The file is emptied only once the export is allowed, and one
    this command created is removed again if the export does not happen.
    """

    def __init__(self, file: Path | None) -> None:
        self.file, self._fd, self._created = file, -1, False

    def __enter__(self) -> _ExportFile:
        if self.file is None:
            return self
        self._created = not os.path.lexists(self.file)
        try:
            self._fd = os.open(self.file, _EXPORT_FLAGS, 0o600)
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                os.fchmod(self._fd, 0o600)  # an existing file's looser bits too: the log holds what was done
        except OSError as exc:
            self.__exit__()
            output.note(f"[bold red]error:[/] cannot write {escape(str(self.file))}: {escape(_why(exc))}")
            raise typer.Exit(1) from None
        return self

    def start(self) -> AbstractContextManager[TextIO]:
        if self._fd < 0:
            return nullcontext(sys.stdout)
        if stat.S_ISREG(os.fstat(self._fd).st_mode):  # not /dev/null or a pipe: those cannot be truncated
            os.ftruncate(self._fd, 0)
        fd, self._fd, self._created = self._fd, -1, False
        return os.fdopen(fd, "w", encoding="utf-8", newline="")

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:  # the export never started: leave no trace of it
            os.close(self._fd)
            if self._created and self.file is not None:
                self.file.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link (exports are not written through links)"
    return exc.strerror or str(exc)


@app.command()
def verify(
    anchor: Annotated[
        str | None, typer.Option("--anchor", help="SEQ:HASH kept from an earlier verify or the audit file.")
    ] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Check that no audit event was edited, removed or reordered; exit 1 naming the first problem."""
    args: dict[str, Any] = {}
    if anchor:
        seq, sep, digest = anchor.partition(":")
        if not sep or not seq.isdigit():
            raise typer.BadParameter("expected SEQ:HASH", param_hint="--anchor")
        args = {"anchor_seq": int(seq), "anchor_hash": digest}
    result = call(Target(data_dir, org), "audit.verify", args, VerifyOut)
    if fmt is Format.json:
        output.emit_json(result)
    elif result.ok:
        span = f" (seq {result.first_seq}-{result.last_seq})" if result.checked else ""
        output.note(f"[green]{escape(result.message)}[/]{span}")
        output.echo(f"head {result.last_seq or result.checkpoint_seq or 0}:{result.head_hash}")
    else:
        output.note(f"[bold red]audit log tampered:[/] {escape(result.message)}")
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def purge(
    older_than_days: Annotated[
        int | None,
        typer.Option("--older-than-days", min=1, help="Default: the retention (TESTGATE_AUDIT_RETENTION_DAYS)."),
    ] = None,
    yes: Yes = False,
    data_dir: DataDir = None,
    org: Org = None,
) -> None:
    """Delete audit events older than the retention, keeping the rest verifiable (asks first)."""
    args = {"older_than_days": older_than_days} if older_than_days else {}
    result = call(Target(data_dir, org), "audit.purge", args, PurgeOut, yes=yes)
    output.note(escape(result.message))
    if result.checkpoint_seq is not None:
        output.note(f"checkpoint {result.checkpoint_seq}:{result.checkpoint_hash}")
