"""Where kept artifacts live: a directory (``filesystem``) or an S3-compatible bucket (``s3``).

``collect`` hashes, sniffs and bounds each file while it streams it into a store's writer; reads and
downloads look the key up in the execution's artifact rows first, so a store is only ever handed keys
testgate made (``<execution id>/<path in the workspace>``). Keys are relative to the store, so a
directory's contents copied under an S3 prefix (``aws s3 sync``) stay readable by the same rows.

Stores block (files, boto3): ``writer`` and ``reader`` are used from worker threads; ``download`` is async.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from testgate.config import Settings


class Missing(LookupError):
    """No stored bytes at a key; the message completes "artifact '<path>' …"."""


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def commit(self, sha256: str) -> None:
        """Keep what was written (``sha256`` is its digest); a writer left uncommitted keeps nothing."""


@dataclass(frozen=True)
class ObjectStream:
    """An open stored object: its size and its bytes, a chunk at a time (closed when iteration ends)."""

    size: int
    chunks: AsyncIterator[bytes]


class ArtifactStore(Protocol):
    def writer(self, key: str) -> AbstractContextManager[Writer]:
        """A new object at ``key``, replacing a leftover; it exists only once committed without error."""

    def reader(self, key: str) -> AbstractContextManager[BinaryIO]:
        """The bytes at ``key``, streamed; ``Missing`` when there are none."""

    async def download(self, key: str) -> Path | ObjectStream:
        """A local file (served with its own range support) or an open stream; ``Missing`` when absent."""


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings choose (S3 clients are made on first use, so starting costs nothing)."""
    if settings.artifacts.store == "s3":
        from testgate.platform.artifact_store.s3 import S3Store

        return S3Store(settings.artifacts, staging=settings.data_dir / "staging")
    from testgate.platform.artifact_store.filesystem import FileStore

    return FileStore(settings.artifacts_dir)
