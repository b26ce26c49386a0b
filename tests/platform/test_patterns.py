"""A caller's grep pattern cannot stall the server: RE2 matches in time linear in the text.

Python's backtracking ``re`` takes about ten seconds for ``^(.*.*){1,5}#`` on one 27-character line, on
the event loop for a log grep (found by a security review: a read-only token froze every request).
"""

from __future__ import annotations

import threading

import pytest

from testgate.errors import InvalidInput
from testgate.platform.patterns import MAX_PATTERN, compile_grep

CATASTROPHIC = r"^(.*.*){1,12}#"  # with backtracking: longer than anyone would wait, even for this line
LINE = "x" * 200


def test_a_catastrophic_pattern_finishes_at_once_on_a_long_line() -> None:
    found: list[object] = []
    pattern = compile_grep(CATASTROPHIC)
    worker = threading.Thread(target=lambda: found.append(pattern.search(LINE)), daemon=True)

    worker.start()
    worker.join(timeout=10)  # a generous bound: RE2 takes microseconds; backtracking would take years

    assert not worker.is_alive(), "the match is still running: the pattern backtracks"
    assert found == [None]
    assert compile_grep(CATASTROPHIC).search(LINE + "#") is not None


def test_ordinary_patterns_match_as_they_do_in_python() -> None:
    assert compile_grep(r"FAILED (\w+)\.(\w+)").search("x FAILED calc.divides").group(2) == "divides"
    assert compile_grep("(?i)error").search("An ERROR here") is not None
    assert compile_grep(r"^25[0-2]$").search("251") is not None
    assert compile_grep("é+").search("caféé").group(0) == "éé"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [(r"(a)\1", "invalid escape sequence"), ("(?=x)", "invalid perl operator"), ("(unclosed", "missing )")],
)
def test_what_only_backtracking_can_do_is_refused_with_the_reason(pattern: str, why: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid regular expression") as refused:
        compile_grep(pattern)
    assert why in refused.value.message
    assert "RE2 has no backreferences, lookaround" in refused.value.message


def test_a_pattern_longer_than_the_bound_is_refused() -> None:
    with pytest.raises(InvalidInput, match=f"longer than {MAX_PATTERN} characters"):
        compile_grep("a" * (MAX_PATTERN + 1))


def test_word_and_digit_classes_are_ascii_and_unicode_classes_are_spelled_out() -> None:
    """RE2's \\w, \\d and \\b are ASCII (Python's are Unicode): the tools' descriptions say so."""
    assert compile_grep(r"\w+").search("é") is None
    assert compile_grep(r"\pL+").search("café").group(0) == "café"
    assert compile_grep(r"\p{Nd}").search("٣") is not None
