"""``testgate.http.headers.header``: one request header read straight from the ASGI scope."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers

from testgate.http.headers import header


def _scope(*pairs: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(pairs)}


def test_a_header_is_read_as_starlette_reads_it() -> None:
    scope = _scope(
        (b"host", b"127.0.0.1:8080"),
        (b"authorization", b"Bearer first"),
        (b"authorization", b"Bearer second"),
        (b"user-agent", b"caf\xe9/1"),
    )
    for name in ("host", "authorization", "user-agent", "origin"):
        assert header(scope, name.encode()) == Headers(scope=scope).get(name)
    assert header(scope, b"authorization") == "Bearer first"  # the first of repeated names, as Starlette
    assert header(scope, b"user-agent") == "café/1"  # latin-1, as ASGI header values are
    assert header(scope, b"origin") is None


def test_a_layer_that_hands_on_new_headers_is_read_afresh() -> None:
    scope = _scope((b"origin", b"http://evil.example"), (b"host", b"a"))
    assert header(scope, b"origin") == "http://evil.example"
    checked = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"origin"]}
    assert header(checked, b"origin") is None  # not the dict kept for the original list
    assert header(checked, b"host") == "a"
    scope["headers"] = [(b"host", b"b")]
    assert header(scope, b"host") == "b"
