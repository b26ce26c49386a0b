"""Artifacts: files a run keeps from its workspace, copied into storage, listed and read back.

Collecting never reads through a link out of the workspace (CWE-59, see ``globs``) and is bounded per
file, in total and in count. Reading looks the path up among the execution's artifact rows — a caller's
path is never opened as given — and the storage path must stay inside the artifacts directory (CWE-22).
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import mimetypes
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.config import Settings
from testgate.errors import LimitExceeded, NotFound, TestgateError
from testgate.platform import globs
from testgate.platform.textread import TextRead, read_text
from testgate.store.executions import ArtifactRow, ExecutionRow

if TYPE_CHECKING:
    from testgate.platform.context import Platform

SNIFF_BYTES = 8192
MAX_PATH = 1024  # the store's column width
_CHUNK = 1024 * 1024


@dataclass
class CollectReport:
    """The artifact rows written, and one line per file that was refused or skipped."""

    rows: list[ArtifactRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Copied:
    path: str
    size: int
    sha256: str
    media_type: str
    is_text: bool
    storage_key: str


@dataclass(frozen=True)
class _Budget:
    files: int
    bytes: int


async def collect(platform: Platform, execution_id: str, workspace: Path, patterns: Sequence[str]) -> CollectReport:
    """Copy the workspace files matching ``patterns`` into storage and record them."""
    async with platform.db.session() as session:
        if await session.get(ExecutionRow, execution_id) is None:
            raise NotFound(f"execution {execution_id!r} not found")
        existing, budget = await _budget(session, platform.settings, execution_id)
    copied, problems = await asyncio.to_thread(
        _collect_files, platform.settings, execution_id, workspace, patterns, existing, budget
    )
    rows = [
        ArtifactRow(
            execution_id=execution_id,
            path=c.path,
            size=c.size,
            sha256=c.sha256,
            media_type=c.media_type,
            is_text=c.is_text,
            storage_key=c.storage_key,
        )
        for c in copied
    ]
    if rows:
        async with platform.db.session() as session:
            session.add_all(rows)
            await session.flush()
    return CollectReport(rows, problems)


async def _budget(session: AsyncSession, settings: Settings, execution_id: str) -> tuple[set[str], _Budget]:
    """Paths already kept and what the limits leave, so a second collect can't pass them."""
    paths = set(await session.scalars(select(ArtifactRow.path).where(ArtifactRow.execution_id == execution_id)))
    used = await session.scalar(
        select(func.coalesce(func.sum(ArtifactRow.size), 0)).where(ArtifactRow.execution_id == execution_id)
    )
    runner = settings.runner
    return paths, _Budget(runner.max_artifact_files - len(paths), runner.max_artifacts_total_bytes - int(used or 0))


def _collect_files(
    settings: Settings,
    execution_id: str,
    workspace: Path,
    patterns: Sequence[str],
    existing: set[str],
    budget: _Budget,
) -> tuple[list[_Copied], list[str]]:
    scan = globs.scan(workspace, patterns, max_found=max(budget.files, 0))
    problems = list(scan.problems)
    if not scan.found and not problems:
        problems.append(f"no artifact matched {', '.join(patterns)}")
    left = budget.bytes
    copied: list[_Copied] = []
    for found in scan.found:
        if found.relative in existing:
            problems.append(f"{found.relative}: already kept for this execution; skipped")
            continue
        try:
            item = _copy(settings, execution_id, workspace, found, left)
        except TestgateError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:
            problems.append(f"{found.relative}: {exc.strerror or exc}")
            continue
        left -= item.size
        copied.append(item)
    return copied, problems


def _copy(settings: Settings, execution_id: str, workspace: Path, found: globs.Found, left: int) -> _Copied:
    """Copy one file into ``artifacts_dir/<execution>/<path>``, hashing and sniffing it on the way."""
    rel = found.relative
    if len(rel) > MAX_PATH:
        raise LimitExceeded(f"{rel[:80]}…: the path is longer than {MAX_PATH} characters; skipped")
    per_file = settings.runner.max_artifact_bytes
    with globs.open_inside(workspace, found) as source:
        _check_size(rel, os.fstat(source.fileno()).st_size, per_file, left)
        parts = rel.split("/")
        target = _make_dirs(settings.artifacts_dir / execution_id, parts[:-1]) / parts[-1]
        digest, head, size = hashlib.sha256(), b"", 0
        target.unlink(missing_ok=True)  # a leftover of an interrupted collect, never a kept artifact
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with open(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    _check_size(rel, size, per_file, left)  # the file may grow while it is copied
                    head += chunk[: max(0, SNIFF_BYTES - len(head))]
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    is_text = looks_like_text(head)
    return _Copied(rel, size, digest.hexdigest(), media_type(rel, is_text), is_text, f"{execution_id}/{rel}")


def _check_size(rel: str, size: int, per_file: int, left: int) -> None:
    if size > per_file:
        raise LimitExceeded(f"{rel}: larger than the artifact limit of {per_file} bytes; skipped")
    if size > left:
        raise LimitExceeded(f"{rel}: would pass the limit on all artifacts of this execution; skipped")


def _make_dirs(root: Path, parts: Sequence[str]) -> Path:
    """``root`` and ``parts`` below it, each created owner-only (``mkdir -p`` would use the umask)."""
    root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    root.mkdir(exist_ok=True, mode=0o700)
    path = root
    for part in parts:
        path = path / part
        path.mkdir(exist_ok=True, mode=0o700)
    return path


def looks_like_text(head: bytes) -> bool:
    """No NUL byte and valid UTF-8 (a character cut at the end of the sample is allowed)."""
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def media_type(path: str, is_text: bool) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return (guessed or ("text/plain" if is_text else "application/octet-stream"))[:100]


class ArtifactInfo(BaseModel):
    path: str = Field(description="the path inside the workspace; pass it to read_artifact")
    size: int
    media_type: str
    is_text: bool
    sha256: str
    created_at: datetime


class ArtifactContent(BaseModel):
    """Part of an artifact: a line range, or the lines around grep matches (``N:`` match, ``N-`` context)."""

    path: str
    size: int
    media_type: str
    is_text: bool
    content: str | None = Field(description="the text; null for a binary file")
    lines: tuple[int, int] | None = Field(description="first and last line read (1-based)")
    total_lines: int | None = Field(description="lines in the file; null when the read stopped early")
    truncated: bool = Field(description="more was there than was returned")
    binary: bool
    matches: int | None = Field(description="lines matching grep; null without grep")
    message: str = ""


async def list_artifacts(session: AsyncSession, execution_id: str) -> list[ArtifactInfo]:
    """The execution's artifacts, by path."""
    rows = await session.scalars(
        select(ArtifactRow).where(ArtifactRow.execution_id == execution_id).order_by(ArtifactRow.path)
    )
    return [
        ArtifactInfo(
            path=r.path,
            size=r.size,
            media_type=r.media_type,
            is_text=r.is_text,
            sha256=r.sha256,
            created_at=r.created_at,
        )
        for r in rows
    ]


async def artifact_row(session: AsyncSession, execution_id: str, path: str) -> ArtifactRow:
    """The row for ``path``; ``NotFound`` when the execution kept no such artifact."""
    row = await session.scalar(
        select(ArtifactRow).where(ArtifactRow.execution_id == execution_id, ArtifactRow.path == path)
    )
    if row is None:
        raise NotFound(f"artifact {path!r} not found in this execution")
    return row


def open_artifact(platform: Platform, row: ArtifactRow) -> Path:
    """The stored file of ``row`` (for downloads), checked to be inside the artifacts directory."""
    root = os.path.realpath(platform.settings.artifacts_dir)
    path = os.path.realpath(os.path.join(root, row.storage_key))
    if path == root or not globs.is_inside(path, root):
        raise NotFound(f"artifact {row.path!r} has no valid storage path")
    if not os.path.isfile(path):
        raise NotFound(f"artifact {row.path!r} is missing from storage")
    return Path(path)


async def read_artifact(
    platform: Platform,
    session: AsyncSession,
    execution_id: str,
    path: str,
    *,
    start_line: int | None = None,
    end_line: int | None = None,
    grep: str | None = None,
    context: int = 0,
    max_matches: int = 50,
    max_bytes: int = 64_000,
) -> ArtifactContent:
    """A bounded read of a text artifact: a line range and/or grep with context; binaries are not read."""
    row = await artifact_row(session, execution_id, path)
    stored = open_artifact(platform, row)
    if not row.is_text:
        return _content(row, None, binary=True, message=f"binary file ({row.media_type}); download it instead")
    read = await asyncio.to_thread(
        read_text,
        stored,
        start_line=start_line,
        end_line=end_line,
        grep=grep,
        context=context,
        max_matches=max_matches,
        max_bytes=max_bytes,
    )
    return _content(row, read)


def _content(row: ArtifactRow, read: TextRead | None, *, binary: bool = False, message: str = "") -> ArtifactContent:
    return ArtifactContent(
        path=row.path,
        size=row.size,
        media_type=row.media_type,
        is_text=row.is_text,
        content=read.content if read else None,
        lines=read.lines if read else None,
        total_lines=read.total_lines if read else None,
        truncated=read.truncated if read else False,
        binary=binary,
        matches=read.matches if read else None,
        message=message,
    )
