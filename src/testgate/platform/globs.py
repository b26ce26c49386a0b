"""Workspace files matched by glob patterns, never leaving the workspace (symlinks included).

Patterns are relative paths: ``*``, ``?`` and ``[...]`` match within one path segment, ``**`` matches
any number of directories, and a matched directory stands for every file under it. The workspace is
walked without following symlinks; a matching symlink is used only when its real path stays inside the
workspace (CWE-22, CWE-59). ``open_inside`` opens by real path with ``O_NOFOLLOW`` and checks the
opened file again, so a link swapped in between the check and the open is caught (CWE-367).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BufferedReader
from pathlib import Path

from testgate.errors import InvalidInput

MAX_PROBLEMS = 100
_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Found:
    """A matched file: ``relative`` is its POSIX path inside the workspace, ``path`` the lexical one."""

    relative: str
    path: Path


@dataclass
class Scan:
    found: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Record a problem; past ``MAX_PROBLEMS`` only the count grows, so one bad tree can't flood."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("more problems were found; only the first ones are listed")


def is_inside(path: str, root: str) -> bool:
    """Whether the real path ``path`` is ``root`` or below it (both already resolved)."""
    return os.path.commonpath([path, root]) == root


def split_pattern(pattern: str) -> list[str]:
    """The pattern's segments; refuses absolute paths and ``..`` (patterns stay in the workspace)."""
    if not pattern or "\x00" in pattern or pattern.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", pattern):
        raise InvalidInput(f"{pattern!r}: a pattern must be a relative path")
    parts = [p for p in pattern.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"{pattern!r}: a pattern must not contain '..'")
    if not parts:
        raise InvalidInput(f"{pattern!r}: the pattern is empty")
    return parts


def translate(parts: Sequence[str]) -> re.Pattern[str]:
    """A regular expression over POSIX relative paths for the pattern's segments."""
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_segment(part) + ("" if last else "/"))
    return re.compile("".join(out))


def _segment(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        char = part[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := part.find("]", i + 2)) != -1:
            body = part[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def scan(workspace: Path, patterns: Sequence[str], *, max_found: int) -> Scan:
    """Files matching any pattern, in a stable order, at most ``max_found`` of them."""
    walker = _Walker(os.path.realpath(workspace), max_found)
    for pattern in patterns:
        try:
            parts = split_pattern(pattern)
        except InvalidInput as exc:
            walker.result.problem(str(exc))
            continue
        walker.pattern(pattern, parts)
    return walker.result


class _Walker:
    def __init__(self, root: str, max_found: int) -> None:
        self.root = root
        self.max_found = max_found
        self.result = Scan()
        self.seen: set[str] = set()
        self.full = False

    def pattern(self, pattern: str, parts: list[str]) -> None:
        """Walk from the pattern's literal prefix only: no need to visit the rest of the workspace."""
        literal = []
        for part in parts:
            if _WILDCARD.search(part):
                break
            literal.append(part)
        base_rel = "/".join(literal)
        base = Path(self.root, *literal)
        if not os.path.lexists(base):
            return
        if not is_inside(os.path.realpath(base), self.root):
            self.result.problem(f"{base_rel}: resolves outside the workspace; refused")
            return
        regex = translate(parts)
        if base_rel:
            self.consider(base_rel, base, regex)
        else:
            self.children("", base, regex)

    def consider(self, rel: str, path: Path, regex: re.Pattern[str] | None) -> None:
        """One entry: ``regex`` None means an ancestor directory matched, so everything below counts."""
        if self.full:
            return
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            self.result.problem(f"{rel}: {exc.strerror}")
            return
        matched = regex is None or regex.fullmatch(rel) is not None
        if stat.S_ISLNK(mode):
            if matched:
                self.link(rel, path)
        elif stat.S_ISDIR(mode):
            self.children(rel, path, None if matched else regex)
        elif matched and stat.S_ISREG(mode):
            self.add(rel, path)
        elif matched:
            self.result.problem(f"{rel}: not a regular file; skipped")

    def children(self, rel: str, path: Path, regex: re.Pattern[str] | None) -> None:
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.result.problem(f"{rel or '.'}: {exc.strerror}")
            return
        for name in names:
            self.consider(f"{rel}/{name}" if rel else name, path / name, regex)

    def link(self, rel: str, path: Path) -> None:
        real = os.path.realpath(path)
        if not is_inside(real, self.root):
            # CWE-59: a link out of the workspace (to /etc/passwd, a home directory) is never read.
            self.result.problem(f"{rel}: a symlink that resolves outside the workspace; refused")
        elif os.path.isdir(real):
            self.result.problem(f"{rel}: a symlink to a directory; not followed")
        elif os.path.isfile(real):
            self.add(rel, path)
        else:
            self.result.problem(f"{rel}: a symlink to something that is not a regular file; skipped")

    def add(self, rel: str, path: Path) -> None:
        if rel in self.seen:
            return
        if len(self.result.found) >= self.max_found:
            self.full = True
            self.result.problem(f"more than {self.max_found} files matched; the rest were skipped")
            return
        self.seen.add(rel)
        self.result.found.append(Found(rel, path))


def open_inside(root: Path, found: Found) -> BufferedReader:
    """Open a matched regular file for reading, after checking again that it is inside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(found.path)
    if not is_inside(real, real_root):
        raise InvalidInput(f"{found.relative}: resolves outside the workspace; refused")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(real, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInput(f"{found.relative}: not a regular file; skipped")
        opened = _opened_path(fd)
        if opened is not None and not is_inside(opened, real_root):
            raise InvalidInput(f"{found.relative}: changed to point outside the workspace; refused")
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb", closefd=True)


def _opened_path(fd: int) -> str | None:
    """Where the kernel says ``fd`` points (Linux /proc); None where that is unavailable."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
