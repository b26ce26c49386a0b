"""Splitting a step's output into bounded lines, whatever the chunk boundaries."""

from __future__ import annotations

from testgate.runner.process import LineSplitter


def test_lines_split_across_chunks_are_joined_and_crlf_is_trimmed() -> None:
    splitter = LineSplitter(keep=100)

    assert splitter.feed(b"hel") == []
    assert splitter.feed(b"lo\r\nwor") == [("hello", 0)]
    assert splitter.feed(b"ld\n\npartial") == [("world", 0), ("", 0)]
    assert splitter.finish() == ("partial", 0)
    assert splitter.finish() is None


def test_a_long_line_keeps_its_first_bytes_and_counts_the_rest() -> None:
    splitter = LineSplitter(keep=4)

    assert splitter.feed(b"abcdef") == []
    assert splitter.feed(b"gh\nij\n") == [("abcd", 4), ("ij", 0)]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    splitter = LineSplitter(keep=100)

    assert splitter.feed(b"caf\xc3\n\xff\n") == [("caf\ufffd", 0), ("\ufffd", 0)]
