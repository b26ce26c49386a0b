"""Artifacts as files under one directory, owner-only, never written or read through a link.

Files are created ``O_EXCL | O_NOFOLLOW`` with mode 0600 in directories made 0700 one at a time (``mkdir -p``
would use the umask). A key is resolved and must stay inside the directory before it is opened (CWE-22),
so even a tampered row cannot name a file elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from testgate.errors import StorageUnavailable
from testgate.platform import globs
from testgate.platform.artifact_store import Missing, Writer


class _File:
    """A writer over an open file: the bytes are in place as they are written."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, data: bytes, /) -> int:
        return self.out.write(data)

    def commit(self, sha256: str) -> None:
        """Nothing to do: the row, not the file, records the digest."""


class FileStore:
    """The filesystem store: ``root/<execution id>/<path>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def writer(self, key: str) -> Iterator[Writer]:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"not a storage key: {key!r}")
        try:
            target = _make_dirs(self.root, parts[:-1]) / parts[-1]
            target.unlink(missing_ok=True)  # a leftover of an interrupted collect, never a kept artifact
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            # The store, not the file being kept, is what failed: say so (and stop trying the others).
            raise StorageUnavailable(f"the artifact directory {self.root} cannot be written: {exc.strerror}") from None
        try:
            with open(fd, "wb") as out:
                yield _File(out)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def path_of(self, key: str) -> Path:
        """The stored file of ``key``, resolved and checked to be inside the directory."""
        root = os.path.realpath(self.root)
        path = os.path.realpath(os.path.join(root, key))
        if path == root or not globs.is_inside(path, root):
            raise Missing("has no valid storage path")
        if not os.path.isfile(path):
            raise Missing("is missing from storage")
        return Path(path)

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        try:
            handle = self.path_of(key).open("rb")
        except FileNotFoundError:
            raise Missing("is missing from storage") from None
        with handle:
            yield handle

    async def download(self, key: str) -> Path:
        return self.path_of(key)


def _make_dirs(root: Path, parts: Sequence[str]) -> Path:
    """``root`` and ``parts`` below it, each created owner-only."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = root
    for part in parts:
        path = path / part
        path.mkdir(exist_ok=True, mode=0o700)
    return path
