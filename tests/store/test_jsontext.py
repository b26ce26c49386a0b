"""``testgate.jsontext``: json.dumps's text from an encoder built once (JSON columns, the audit chain)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from testgate import jsontext

SAMPLES: list[Any] = [
    {"b": 1, "a": [1.5, None, True, False, 'é\n"\\', {"z": {}, "y": []}]},
    {"ünïcode": "日本", 3: "int key", "nan": math.nan, "inf": -math.inf},
    [],
    "just a string with \u2028",
    42,
    None,
]


@pytest.mark.parametrize("sample", SAMPLES)
def test_the_same_text_as_json_dumps(sample: Any) -> None:
    assert jsontext.dumps(sample) == json.dumps(sample)
    options: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "default": str}
    if isinstance(sample, dict) and any(isinstance(k, int) for k in sample):
        options["sort_keys"] = False  # json.dumps cannot sort mixed keys either
    assert jsontext.encoder(**options)(sample) == json.dumps(sample, **options)


def test_default_names_what_json_cannot_encode() -> None:
    value = [{"time": datetime(2026, 12, 7, tzinfo=UTC), "id": b"x"}]
    options: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "default": str}
    assert jsontext.encoder(**options)(value) == json.dumps(value, **options)


def test_what_json_refuses_it_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"when": datetime(2026, 12, 7, tzinfo=UTC)})
    with pytest.raises(TypeError):
        jsontext.encoder(sort_keys=True)({"a": 1, 2: "b"})  # mixed keys cannot be sorted
    # A failed encoding leaves nothing behind: the next one is whole.
    assert jsontext.dumps({"a": [1]}) == '{"a": [1]}'
