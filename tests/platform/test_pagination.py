"""Cursors are opaque, belong to one list and hold one key of one type: anything else is refused, never
read as "start from the beginning" (an agent looping on a bad cursor would page forever)."""

from __future__ import annotations

import base64
import json

import pytest

from testgate.errors import InvalidInput
from testgate.platform.pagination import MAX_KEY, decode_cursor, decode_int_cursor, encode_cursor


def _raw(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_cursor_comes_back_to_the_list_that_gave_it() -> None:
    assert decode_cursor(encode_cursor("executions", "01jabc"), "executions") == "01jabc"
    assert decode_int_cursor(encode_cursor("audit", 42), "audit") == 42
    assert decode_int_cursor(encode_cursor("audit", MAX_KEY), "audit") == MAX_KEY


@pytest.mark.parametrize(
    ("cursor", "kind"),
    [
        (encode_cursor("executions", "01jabc"), "testcases"),  # another list's
        (encode_cursor("results:01jexec", 7), "results:01jother"),  # another execution's results
        (encode_cursor("audit", 7), "executions"),
        (_raw([1]), "audit"),  # the old shape, without the list
        (_raw([None]), "executions"),
        (_raw(["executions", None]), "executions"),
        (_raw(["executions", 1]), "executions"),  # a number where an id goes
        (_raw(["executions", ""]), "executions"),
        (_raw(["executions", "a\x00b"]), "executions"),
        (_raw(["executions", "x" * 201]), "executions"),
        (_raw(["audit", -1]), "audit"),  # seqs and ids are never negative
        (_raw(["audit", MAX_KEY + 1]), "audit"),
        (_raw(["audit", 1.5]), "audit"),
        (_raw(["audit", True]), "audit"),
        (_raw(["audit", "1"]), "audit"),
        (_raw(["audit", 1, 2]), "audit"),
        (_raw({"audit": 1}), "audit"),
        ("not-base64!", "audit"),
        (base64.urlsafe_b64encode(b"\xff\xfe").decode(), "audit"),
    ],
)
def test_anything_else_is_refused_as_not_valid(cursor: str, kind: str) -> None:
    decode = decode_int_cursor if kind.startswith(("audit", "results")) else decode_cursor
    with pytest.raises(InvalidInput, match="the cursor is not valid"):
        decode(cursor, kind)
