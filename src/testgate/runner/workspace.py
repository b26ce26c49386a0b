"""Per-execution workspaces: a private directory created before the steps and removed after them."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testgate.errors import RunnerError


def workspace_path(root: Path, execution_id: str) -> Path:
    return root / execution_id


async def create(root: Path, execution_id: str) -> Path:
    """A fresh, empty directory only this user can enter (mode 0700)."""
    path = workspace_path(root, execution_id)
    await asyncio.to_thread(_create, root, path)
    return path


def _create(root: Path, path: Path) -> None:
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.exists():
        _remove(path)  # left behind by a process that crashed
    path.mkdir(mode=0o700)
    path.chmod(0o700)  # mkdir's mode is narrowed by the umask, never widened; make it exact


async def remove(path: Path) -> None:
    """Delete a workspace, including read-only files and directories a step left behind."""
    await asyncio.to_thread(_remove, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _rmtree(path)


def _rmtree(path: Path | str) -> None:
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=_make_writable_and_retry)


def _make_writable_and_retry(function: Callable[..., Any], failed: str, _exc: Any) -> None:
    parent = os.path.dirname(failed)
    os.chmod(parent, stat.S_IRWXU)
    if function is not os.rmdir and os.path.isdir(failed) and not os.path.islink(failed):
        os.chmod(failed, stat.S_IRWXU)
        _rmtree(failed)
        return
    function(failed)


def inside(workspace: Path, relative: str, *, what: str) -> Path:
    """``workspace/relative`` with symlinks resolved, refused unless it stays inside the workspace."""
    root = workspace.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise RunnerError(f"{what} {relative!r} is outside the workspace")
    return target
