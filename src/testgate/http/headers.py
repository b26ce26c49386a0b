"""Reading a request header straight from the ASGI scope.

The front door's layers and the MCP guard each need one or two headers of every request; building
Starlette's ``Headers`` for each (and its ``get``, which lowercases, encodes and raises ``KeyError`` on a
miss) cost more than the lookups themselves. The headers are made a dict once per request, kept in the
scope beside the list they were made from: a layer that hands on a new header list gets a new dict.
"""

from __future__ import annotations

from starlette.types import Scope

_KEY = "testgate.headers"


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lowercase, as ASGI gives names), None without one."""
    raw = scope["headers"]
    kept = scope.get(_KEY)
    if kept is None or kept[0] is not raw:
        kept = scope[_KEY] = (raw, dict(reversed(raw)))  # reversed: the first of repeated names wins
    value = kept[1].get(name)
    return None if value is None else value.decode("latin-1")
