"""Artifacts: files a run keeps from its workspace, copied into storage, listed and read back.

Collecting never reads through a link out of the workspace (CWE-59, see ``globs``) and is bounded per
file, in total and in count. Storage is the ``artifact_store`` the settings choose (a directory, or an
S3-compatible bucket); a file the store fails to take is a problem line, never a row. Reading looks the
path up among the execution's artifact rows — a caller's path is never opened as given — and the
filesystem store keeps every storage path inside its directory (CWE-22).
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import io
import mimetypes
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.config import Settings
from testgate.errors import LimitExceeded, NotFound, StorageUnavailable, TestgateError
from testgate.platform import globs
from testgate.platform.artifact_store import ArtifactStore, Missing, ObjectStream
from testgate.platform.artifact_store.filesystem import FileStore
from testgate.platform.textread import TextQuery, TextRead
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
        _collect_files, platform, execution_id, workspace, patterns, existing, budget
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
    platform: Platform,
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
    for index, found in enumerate(scan.found):
        if found.relative in existing:
            problems.append(f"{found.relative}: already kept for this execution; skipped")
            continue
        try:
            item = _copy(platform, execution_id, workspace, found, left)
        except StorageUnavailable as exc:
            problems.append(f"{found.relative}: not stored: {exc}")
            # The store is down or refusing writes: every further file would wait out the same retries.
            if rest := len(scan.found) - index - 1:
                problems.append(f"{rest} more file(s) not stored: the artifact store failed")
            break
        except TestgateError as exc:
            problems.append(str(exc))
            continue
        except OSError as exc:
            problems.append(f"{found.relative}: {exc.strerror or exc}")
            continue
        left -= item.size
        copied.append(item)
    return copied, problems


def _copy(platform: Platform, execution_id: str, workspace: Path, found: globs.Found, left: int) -> _Copied:
    """Stream one file into the store at ``<execution>/<path>``, hashing, sniffing and bounding it on the way."""
    rel = found.relative
    if len(rel) > MAX_PATH:
        raise LimitExceeded(f"{rel[:80]}…: the path is longer than {MAX_PATH} characters; skipped")
    per_file = platform.settings.runner.max_artifact_bytes
    key = f"{execution_id}/{rel}"
    with globs.open_inside(workspace, found) as source:
        _check_size(rel, os.fstat(source.fileno()).st_size, per_file, left)
        digest, head, size = hashlib.sha256(), b"", 0
        with platform.artifact_store.writer(key) as out:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                _check_size(rel, size, per_file, left)  # the file may grow while it is copied
                head += chunk[: max(0, SNIFF_BYTES - len(head))]
                digest.update(chunk)
                out.write(chunk)
            out.commit(digest.hexdigest())
    is_text = looks_like_text(head)
    return _Copied(rel, size, digest.hexdigest(), media_type(rel, is_text), is_text, key)


def _check_size(rel: str, size: int, per_file: int, left: int) -> None:
    if size > per_file:
        raise LimitExceeded(f"{rel}: larger than the artifact limit of {per_file} bytes; skipped")
    if size > left:
        raise LimitExceeded(f"{rel}: would pass the limit on all artifacts of this execution; skipped")


def looks_like_text(head: bytes) -> bool:
    """No NUL byte, and valid UTF-8 (a character cut at the end of the sample is allowed) or else text in a
    legacy 8-bit encoding (Windows-1252 / Latin-1, as older tools write their logs): hardly any control
    characters but tabs, line ends, form feeds, escapes and backspaces."""
    if b"\x00" in head:
        return False
    if is_utf8(head):
        return True
    controls = sum(1 for byte in head if byte < 0x20 and byte not in _TEXT_CONTROLS)
    return controls * 100 <= len(head)


_TEXT_CONTROLS = frozenset(b"\t\n\r\f\x1b\x08")


def is_utf8(head: bytes) -> bool:
    """``head`` decodes as UTF-8 (a character cut at its end allowed)."""
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
    """The stored file of ``row`` in the filesystem store, checked to be inside its directory."""
    store = platform.artifact_store
    if not isinstance(store, FileStore):
        raise TypeError("artifacts are not stored as local files; use download()")
    with _about(row):
        return store.path_of(row.storage_key)


async def download(platform: Platform, row: ArtifactRow) -> Path | ObjectStream:
    """The stored bytes of ``row`` to send whole: a local file, or an open stream from object storage."""
    with _about(row):
        return await platform.artifact_store.download(row.storage_key)


@contextmanager
def _about(row: ArtifactRow) -> Iterator[None]:
    """A key the store lacks is the row's artifact not found."""
    try:
        yield
    except Missing as exc:
        raise NotFound(f"artifact {row.path!r} {exc}") from None


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
    query = TextQuery(start_line, end_line, grep, context, max_matches, max_bytes)
    read = await asyncio.to_thread(_read, platform.artifact_store, row, query)
    if read is None:
        return _content(row, None, binary=True, message=f"binary file ({row.media_type}); download it instead")
    return _content(row, read)


def _read(store: ArtifactStore, row: ArtifactRow, query: TextQuery) -> TextRead | None:
    """The query over the stored bytes, streamed (only what the answer needs is fetched); None for a binary."""
    with _about(row), store.reader(row.storage_key) as stored:
        if not row.is_text:
            return None  # opened only to tell a missing file from a binary one
        # UTF-8, or else the legacy 8-bit encoding ``looks_like_text`` let in (no encoding is stored with a row).
        head = stored.read(SNIFF_BYTES)
        encoding = "utf-8" if is_utf8(head) else "cp1252"
        with io.TextIOWrapper(io.BufferedReader(_Prefixed(head, stored)), encoding=encoding, errors="replace") as text:
            return query.read(text)


class _Prefixed(io.RawIOBase):
    """``head`` (already read from ``rest``), then the rest of ``rest``."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


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
