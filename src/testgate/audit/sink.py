"""The audit file sink: each committed event appended as one JSON line, for shipping to a SIEM.

The file is created owner-only (0600) and opened for appending without following symlinks. Lines are
written only after the event's transaction commits, so the file never holds an event the database
rolled back. The database stays the record of truth: a failed write is logged, never raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from testgate.audit.formats import StoredEvent, event_record
from testgate.config import Settings

log = structlog.get_logger("testgate.audit")

_PENDING = "testgate.audit.sink_pending"
_FLAGS = os.O_CREAT | os.O_APPEND | os.O_WRONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


class FileSink:
    """Appends audit events as JSON lines to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, lines: list[str]) -> None:
        """Append ``lines`` in one write (O_APPEND keeps concurrent writers' lines whole)."""
        data = "".join(line + "\n" for line in lines).encode()
        fd = os.open(self.path, _FLAGS, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def append(self, rows: Sequence[StoredEvent]) -> None:
        """Write committed ``rows`` now; a failure is logged (the database stays the record of truth)."""
        lines = [json.dumps(event_record(row), ensure_ascii=False, default=str) for row in rows]
        try:
            self.write(lines)
        except OSError as exc:
            log.error("audit file sink write failed", path=str(self.path), events=len(lines), error=str(exc))

    def attach(self, session: AsyncSession, row: StoredEvent) -> None:
        """Write ``row`` when ``session``'s transaction commits; drop it if it rolls back."""
        pending: dict[FileSink, list[str]] | None = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = {}
            event.listen(session.sync_session, "after_commit", _flush)
            event.listen(session.sync_session, "after_rollback", _drop)
        pending.setdefault(self, []).append(json.dumps(event_record(row), ensure_ascii=False, default=str))


def _flush(session: Session) -> None:
    pending: dict[FileSink, list[str]] = session.info.get(_PENDING, {})
    for sink, lines in list(pending.items()):
        try:
            sink.write(lines)
        except OSError as exc:
            log.error("audit file sink write failed", path=str(sink.path), events=len(lines), error=str(exc))
    pending.clear()


def _drop(session: Session, *_: Any) -> None:
    session.info.get(_PENDING, {}).clear()


def from_settings(settings: Settings) -> FileSink | None:
    """The sink ``settings.audit_file`` asks for, if any."""
    return FileSink(settings.audit_file) if settings.audit_file is not None else None
