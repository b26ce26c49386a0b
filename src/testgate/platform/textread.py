"""Bounded reads of a text file: a line range, or grep with context, streamed a line at a time.

Only what the answer needs is read: the read stops at the end of the range, at ``max_matches`` matches
or at ``max_bytes`` of output, and a line longer than ``MAX_LINE`` characters is cut, never held whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from testgate.errors import InvalidInput
from testgate.platform.patterns import Pattern, compile_grep

MAX_LINE = 65_536
LINE_CUT = "… [line cut]"


@dataclass(frozen=True)
class TextRead:
    content: str
    lines: tuple[int, int] | None
    total_lines: int | None
    truncated: bool
    matches: int | None


def read_text(
    path: Path,
    *,
    start_line: int | None = None,
    end_line: int | None = None,
    grep: str | None = None,
    context: int = 0,
    max_matches: int = 50,
    max_bytes: int = 64_000,
) -> TextRead:
    """Lines ``start_line``..``end_line`` (1-based, inclusive), or within them the lines around ``grep``."""
    query = TextQuery(start_line, end_line, grep, context, max_matches, max_bytes)
    with path.open(encoding="utf-8", errors="replace") as handle:
        return query.read(handle)


@dataclass(frozen=True)
class TextQuery:
    """What to read, checked when made (before any storage is opened); ``read`` runs it over a stream."""

    start_line: int | None = None
    end_line: int | None = None
    grep: str | None = None
    context: int = 0
    max_matches: int = 50
    max_bytes: int = 64_000

    def __post_init__(self) -> None:
        start = self.start
        if start < 1 or (self.end_line is not None and self.end_line < start):
            raise InvalidInput(f"the line range {start}..{self.end_line} is not valid (lines count from 1)")
        if self.grep:
            compile_grep(self.grep)

    @property
    def start(self) -> int:
        return 1 if self.start_line is None else self.start_line

    def read(self, handle: TextIO) -> TextRead:
        """The answer, reading ``handle`` only as far as it needs."""
        out = _Output(max(1, self.max_bytes))
        lines = numbered(handle)
        if not self.grep:
            return _read_range(lines, self.start, self.end_line, out)
        grep = _Grep(compile_grep(self.grep), max(0, self.context), max(1, self.max_matches), out)
        return grep.run(lines, self.start, self.end_line)


def numbered(handle: TextIO) -> Iterator[tuple[int, str]]:
    """(line number, line) pairs; a line past ``MAX_LINE`` characters is cut and the rest skipped."""
    number = 0
    while line := handle.readline(MAX_LINE):
        if len(line) == MAX_LINE and not line.endswith("\n"):
            while (rest := handle.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
            line += LINE_CUT + "\n"
        number += 1
        yield number, line


class _Output:
    """The answer being built, bounded in UTF-8 bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.parts: list[str] = []
        self.used = 0
        self.max_bytes = max_bytes
        self.full = False

    def add(self, text: str) -> bool:
        """Append ``text`` if it fits; the first piece is cut to fit rather than dropped."""
        size = len(text.encode())
        if self.used + size <= self.max_bytes:
            self.parts.append(text)
            self.used += size
            return True
        if not self.parts:
            self.parts.append(text.encode()[: self.max_bytes].decode(errors="ignore"))
        self.full = True
        return False

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _read_range(lines: Iterator[tuple[int, str]], start: int, end: int | None, out: _Output) -> TextRead:
    first = last = None
    seen = 0
    for number, line in lines:
        seen = number
        if number < start:
            continue
        if (end is not None and number > end) or not out.add(line):
            if last is None and out.parts:
                first = last = number  # one line bigger than the whole budget, cut
            break
        first = first or number
        last = number
    else:
        return TextRead(out.text, _span(first, last), seen, False, None)
    return TextRead(out.text, _span(first, last), None, out.full, None)


def _span(first: int | None, last: int | None) -> tuple[int, int] | None:
    return (first, last) if first is not None and last is not None else None


class _Grep:
    """``grep -n -C`` over a stream: ``N:`` for a matching line, ``N-`` for context, ``--`` between runs."""

    def __init__(self, regex: Pattern, context: int, max_matches: int, out: _Output) -> None:
        self.regex = regex
        self.before: deque[tuple[int, str]] = deque(maxlen=context)
        self.context = context
        self.max_matches = max_matches
        self.out = out
        self.matches = 0
        self.after = 0
        self.emitted = 0

    def run(self, lines: Iterator[tuple[int, str]], start: int, end: int | None) -> TextRead:
        first = last = None
        seen = 0
        for number, line in lines:
            seen = number
            if number < start:
                continue
            if (end is not None and number > end) or not self.line(number, line.rstrip("\n")):
                break
            first = first or number
            last = number
        else:
            return TextRead(self.out.text, _span(first, last), seen, self.out.full, self.matches)
        return TextRead(self.out.text, _span(first, last), None, self.out.full, self.matches)

    def line(self, number: int, text: str) -> bool:
        """Take one line; False when the answer is complete (enough matches, or no room left)."""
        if self.regex.search(text):
            if self.matches >= self.max_matches:
                self.out.full = True  # more matches exist than were returned
                return False
            self.matches += 1
            while self.before:
                self.emit(*self.before.popleft(), "-")
            self.after = self.context
            return self.emit(number, text, ":")
        if self.after:
            self.after -= 1
            return self.emit(number, text, "-")
        self.before.append((number, text))
        return True

    def emit(self, number: int, text: str, mark: str) -> bool:
        if self.emitted and number > self.emitted + 1 and not self.out.add("--\n"):
            return False
        self.emitted = number
        return self.out.add(f"{number}{mark}{text}\n")
