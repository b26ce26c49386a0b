"""Labels (workflows', test cases') and execution tags: what a key and a value may be, and selectors over them."""

from __future__ import annotations

import re
from typing import Any

from testgate.errors import InvalidInput

# A label's (and an execution tag's) key: letters, digits and '._/-', starting and ending alphanumeric.
LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
MAX_LABEL_VALUE = 63
MAX_LABELS = 50


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` if each key is a label key and each value at most 63 characters, at most 50 of them;
    ``ValueError`` naming the first that is not."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, val in labels.items():
        if not LABEL_KEY.match(key):
            raise ValueError(f"label key {key!r} is not valid (letters, digits, '._/-', at most 63)")
        if len(val) > MAX_LABEL_VALUE:
            raise ValueError(f"label {key!r}: value longer than {MAX_LABEL_VALUE} characters")
    return labels


def parse_selector(selector: str | None, *, max_value: int = MAX_LABEL_VALUE) -> dict[str, str | None]:
    """``team=qa,smoke`` -> {"team": "qa", "smoke": None} (a bare key means "has the label").

    Operators testgate does not support (``team!=qa``, ``team==qa``, ``a in (b)``) are refused rather than
    read as a selector that matches nothing. Keys are otherwise taken as they are: test cases stored before
    labels were checked may have keys no new label can have, and must stay selectable. ``max_value`` is the
    longest value the selected field holds (63 for labels, 255 for execution tags).
    """
    result: dict[str, str | None] = {}
    for part in (selector or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not key or _OPERATOR_CHARS & set(key) or value.startswith(("=", "!")) or len(value) > max_value:
            raise InvalidInput(
                f"label selector {selector!r}: {part!r} is not 'key' or 'key=value' (values at most {max_value} "
                "characters; '!=', '==' and set operators are not supported)"
            )
        result[key] = value if sep else None
    return result


_OPERATOR_CHARS = frozenset("!=<>()")


def matches(labels: dict[str, Any], selector: dict[str, str | None]) -> bool:
    return all(k in labels and (v is None or str(labels[k]) == v) for k, v in selector.items())
