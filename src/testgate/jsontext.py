"""JSON text with ``json.dumps``'s output, its C encoder built once; and ``loads`` for untrusted input.

``json.dumps`` (and ``JSONEncoder.encode``) builds a new C encoder, a markers dict and a closure on every
call, which costs more than encoding a small value: the audit event of every tool call encodes several.
An ``encoder`` here gives the same text for the same options, except that it does not check for
circular references (``check_circular=False``: a cycle ends in ``RecursionError`` instead of
``ValueError``); what it encodes comes from this codebase, built from JSON-shaped values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import JSONEncoder, encode_basestring_ascii
from typing import Any

try:
    from _json import make_encoder
except ImportError:  # pragma: no cover - CPython always has the C accelerator
    make_encoder = None  # type: ignore[assignment, misc]


def encoder(
    *, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": "), default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=..., separators=..., default=..., check_circular=False)``, as a function."""
    python = JSONEncoder(sort_keys=sort_keys, separators=separators, default=default, check_circular=False)
    if make_encoder is None:  # pragma: no cover
        return python.encode
    item_separator, key_separator = separators
    encode = make_encoder(
        None, python.default, encode_basestring_ascii, None, key_separator, item_separator, sort_keys, False, True
    )
    return lambda value: "".join(encode(value, 0))


dumps = encoder()
"""``json.dumps`` with its default options (the JSON columns' serializer)."""


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` for input from outside: a document nested past the parser's depth raises
    ``RecursionError``, not ``ValueError``; here it is a ``ValueError`` too (no caller takes such a
    document), so one ``except ValueError`` refuses every malformed one instead of a 500."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
