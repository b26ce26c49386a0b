"""A caller's regular expression (``grep`` over logs and artifacts), matched in time linear in the text.

Python's ``re`` backtracks: ``^(.*.*){1,5}#`` takes about ten seconds on one 27-character line, and a log
grep runs on the event loop, so one read-only caller could stall every request the server has (and the
request timeout cannot interrupt a match). RE2 (``google-re2``) matches in time linear in the pattern and
the text, within a bounded amount of memory, whatever the pattern. The price: it refuses what only
backtracking can do (backreferences such as ``\\1``, lookahead and lookbehind, atomic groups), and the
error says so; and ``\\w``, ``\\d`` and ``\\b`` match ASCII only (``\\pL`` and ``\\p{Nd}`` match any letter or
digit), which the tools' descriptions say.
"""

from __future__ import annotations

from typing import Any, Protocol

import re2  # type: ignore[import-untyped]

from testgate.errors import InvalidInput

MAX_PATTERN = 1000  # characters

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's error, answered as such: not a line on stderr


class Pattern(Protocol):
    """What a compiled grep offers: ``search`` (a match object, or None)."""

    def search(self, text: str) -> Any: ...


def compile_grep(pattern: str) -> Pattern:
    """The caller's regular expression in RE2 syntax, or ``InvalidInput`` naming what is wrong with it."""
    if len(pattern) > MAX_PATTERN:
        raise InvalidInput(f"grep: the pattern is longer than {MAX_PATTERN} characters")
    try:
        compiled: Pattern = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidInput(
            f"grep {pattern!r} is not a valid regular expression in RE2 syntax: {reason} (RE2 has no "
            "backreferences, lookaround, atomic groups or \\Z, so that matching stays linear in the text)"
        ) from None
    return compiled
