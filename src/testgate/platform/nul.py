"""U+0000 in text is refused where input enters, naming the field.

PostgreSQL cannot store it in a text or JSON column (the INSERT fails, and the caller saw an internal
error), SQLite's C interface ends a string at it, and a step's environment or command line cannot carry it.
No field of testgate's has a use for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MESSAGE = "must not contain the NUL character (U+0000)"


def locations(value: Any, loc: tuple[int | str, ...] = ()) -> Iterator[tuple[int | str, ...]]:
    """Where in ``value`` (JSON-like: mappings, lists, scalars) a string or mapping key holds U+0000."""
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, Mapping):
        for key, item in value.items():
            # A key is named with the character escaped: messages and the audit log carry the path.
            shown = key.replace("\x00", "\\u0000") if isinstance(key, str) else key
            if shown != key:
                yield (*loc, shown)
            yield from locations(item, (*loc, shown))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from locations(item, (*loc, index))
