"""Materializing ``spec.content`` into a workspace: a git clone, a copied local directory, inline files.

Sources apply in that order (the clone needs an empty directory; inline files win). Nothing is
written outside the workspace: paths are resolved and checked, and symlinks are never followed out.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from testgate.errors import RunnerError
from testgate.platform.spec import Content, ContentFile, GitContent
from testgate.runner.process import Outcome
from testgate.runner.workspace import inside

ProcessRun = Callable[[list[str], Path, float], Awaitable[Outcome]]
"""Runs a command (argv, working directory, timeout) with its output going to the execution's log."""

Note = Callable[[str], Awaitable[None]]
"""Writes one system line to the execution's log."""

# ext:: runs arbitrary commands as a "transport"; never allow it for a URL taken from a spec.
GIT = ("git", "-c", "protocol.ext.allow=never")


async def materialize(
    content: Content | None, workspace: Path, *, run: ProcessRun, git_timeout: float, note: Note
) -> None:
    """Fill ``workspace`` from ``content``; a RunnerError names what failed."""
    if content is None:
        return
    if content.git is not None:
        await note(f"content: cloning {content.git.uri}")
        await _clone(content.git, workspace, run, git_timeout)
    if content.directory is not None:
        await note(f"content: copying {content.directory}")
        skipped = await asyncio.to_thread(_copy_directory, content.directory, workspace)
        if skipped:
            await note(f"content: skipped {skipped} symlink(s) leading outside the directory, or special files")
    if content.files:
        await asyncio.to_thread(_write_files, content.files, workspace)
        await note(f"content: wrote {len(content.files)} inline file(s)")


async def _clone(git: GitContent, workspace: Path, run: ProcessRun, timeout: float) -> None:
    clone = [*GIT, "clone", "--depth", "1"]
    if git.revision:
        clone += ["--branch", git.revision]
    if git.paths:
        clone.append("--no-checkout")
    await _git(run, [*clone, "--", git.uri, str(workspace)], workspace, timeout)
    if git.paths:
        # A sparse checkout of only the listed paths (gitignore-style patterns).
        await _git(run, [*GIT, "sparse-checkout", "set", "--no-cone", "--", *git.paths], workspace, timeout)
        await _git(run, [*GIT, "checkout"], workspace, timeout)


async def _git(run: ProcessRun, argv: list[str], cwd: Path, timeout: float) -> None:
    outcome = await run(argv, cwd, timeout)
    action = f"git {argv[len(GIT)]}"
    if outcome.kind == "timed_out":
        raise RunnerError(f"{action} timed out after {timeout:g}s")
    if outcome.kind == "aborted":
        raise RunnerError(f"{action} was aborted")
    if outcome.exit_code != 0:
        raise RunnerError(f"{action} failed with exit code {outcome.exit_code} (see the log)")


def _copy_directory(directory: str, workspace: Path) -> int:
    source = Path(directory)
    if not source.is_absolute():
        raise RunnerError(f"content.directory must be an absolute path, got {directory!r}")
    if not source.is_dir():
        raise RunnerError(f"content.directory {directory!r} is not a directory on the runner")
    root = source.resolve()
    if workspace.resolve().is_relative_to(root):
        raise RunnerError(f"content.directory {directory!r} contains the workspace itself")
    try:
        return _copy_tree(root, workspace)
    except OSError as exc:
        raise RunnerError(f"content.directory {directory!r} could not be copied: {exc}") from None


def _copy_tree(root: Path, workspace: Path) -> int:
    """Copy regular files, directories and links that stay inside ``root``; count what was skipped."""
    skipped = 0
    for current, dirnames, filenames in os.walk(root):
        here = Path(current)
        relative = here.relative_to(root)
        target = inside(workspace, str(relative), what="content.directory entry")
        target.mkdir(exist_ok=True)
        for name in [*dirnames, *filenames]:
            item, dest = here / name, target / name
            if item.is_symlink():
                skipped += not _copy_link(item, root, dest)
            elif item.is_file():
                _clear(dest)
                shutil.copy2(item, dest, follow_symlinks=False)
            elif not item.is_dir():
                skipped += 1  # sockets, pipes and devices are not content
    return skipped


def _copy_link(link: Path, root: Path, dest: Path) -> bool:
    """Recreate a link whose target is inside ``root`` (relative, so it points into the copy)."""
    resolved = link.resolve()
    if not resolved.is_relative_to(root):
        return False
    _clear(dest)
    dest.symlink_to(os.path.relpath(resolved, link.parent.resolve()))
    return True


def _clear(dest: Path) -> None:
    """Remove a file or link in the way, so a copy never writes through a link."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()


def _write_files(files: list[ContentFile], workspace: Path) -> None:
    for file in files:
        target = inside(workspace, file.path, what="content file")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _clear(target)
            target.write_bytes(file.content.encode())
            if file.mode is not None:
                target.chmod(file.mode)
        except OSError as exc:
            raise RunnerError(f"content file {file.path!r} could not be written: {exc.strerror}") from None
