"""Workspace content: a cloned git repository, a copied local directory, and clear failures."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testgate.platform.context import Platform
from testgate.runner import workspace

if TYPE_CHECKING:
    from conftest import Harness

GIT_IDENTITY = ["-c", "user.email=ci@example.com", "-c", "user.name=CI"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A local repository: branch ``main`` with two directories, and a branch ``feature``."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "docs").mkdir()
    (repo / "tests" / "check.sh").write_text("echo checked on $(git rev-parse --abbrev-ref HEAD)\n")
    (repo / "docs" / "readme.txt").write_text("docs\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "tests" / "feature.txt").write_text("feature\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")
    return repo


async def test_content_is_cloned_from_a_file_url_at_a_revision(runner: Harness, repository: Path) -> None:
    done = await runner.run(
        [{"name": "check", "shell": "sh tests/check.sh && cat tests/feature.txt && git log --oneline | wc -l"}],
        content={"git": {"uri": f"file://{repository}", "revision": "feature"}},
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["checked on feature", "feature", "1"]  # --depth 1
    assert f"content: cloning file://{repository}" in done.texts


async def test_git_paths_check_out_only_a_subset(runner: Harness, repository: Path) -> None:
    done = await runner.run(
        [{"name": "list", "shell": "ls"}],
        content={"git": {"uri": f"file://{repository}", "paths": ["tests"]}},
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["tests"]


async def test_a_failing_clone_fails_the_execution_with_a_clear_reason(runner: Harness, tmp_path: Path) -> None:
    done = await runner.run(
        [{"name": "never", "shell": "echo never"}],
        content={"git": {"uri": f"file://{tmp_path}/missing"}},
    )

    assert done.row.status == "failed"
    assert done.row.reason == "content: git clone failed with exit code 128 (see the log)"
    assert done.statuses == ["skipped"]
    assert any("does not exist" in t or "not appear to be a git repository" in t for t in done.texts)
    assert done.row.reason in done.texts[-2]


async def test_a_local_directory_is_copied_without_links_leading_out(runner: Harness, tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.txt").write_text("data\n")
    (source / "inner-link").symlink_to(source / "sub" / "data.txt")
    (tmp_path / "outside.txt").write_text("secret\n")
    (source / "outer-link").symlink_to(tmp_path / "outside.txt")
    done = await runner.run(
        [{"name": "look", "shell": "cat inner-link; ls -A | sort | tr '\\n' ' '"}],
        content={"directory": str(source)},
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["data", "inner-link sub "]
    assert any("skipped 1 symlink(s)" in t for t in done.texts)


async def test_a_relative_directory_is_refused(runner: Harness) -> None:
    done = await runner.run([{"name": "never", "shell": "true"}], content={"directory": "relative/dir"})

    assert done.row.status == "failed"
    assert done.row.reason == "content: content.directory must be an absolute path, got 'relative/dir'"
    assert done.statuses == ["skipped"]


async def test_workspaces_are_private_and_removed_with_read_only_leftovers(runner: Harness, platform: Platform) -> None:
    done = await runner.run(
        [{"name": "mode", "shell": "stat -c %a .; mkdir -p locked/inner && touch locked/inner/f && chmod 0500 locked"}]
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["700"]
    assert not (platform.settings.workspaces_dir / done.row.id).exists()


async def test_a_workspace_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    stale = tmp_path / "abc"
    (stale / "old").mkdir(parents=True)
    (stale / "old" / "f").write_text("x")
    os.chmod(stale / "old", 0o500)

    path = await workspace.create(tmp_path, "abc")

    assert list(path.iterdir()) == []
    await workspace.remove(path)
    assert not path.exists()
