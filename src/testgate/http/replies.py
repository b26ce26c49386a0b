"""The answers the front door gives before (or instead of) the application: one shape per kind of route.

On MCP endpoints a refusal is a JSON-RPC error object (``id: null``, the request was not read as JSON-RPC);
everywhere else it is an RFC 7807 problem, the same shape ``testgate.api.problems`` gives.

    413  limit-exceeded          -32600 invalid request
    421  misdirected-request     -32600            (Host is not one of this server's names)
    403  origin-not-allowed      -32600            (Origin is not allowed)
    429  rate-limited            -32000 server error (Retry-After, RateLimit-*)
    503  rate-limit-unavailable  -32000            (Redis unreachable, fail_closed)
    504  timeout                 -32000
    500  internal-error          -32603 internal error
"""

from __future__ import annotations

import json
from typing import Any

from mcp_types import INTERNAL_ERROR, INVALID_REQUEST
from starlette.responses import Response
from starlette.types import Scope

from testgate.api.problems import BASE, MEDIA_TYPE
from testgate.http import paths
from testgate.http.request_id import HEADER, scope_request_id

SERVER_ERROR = -32000  # JSON-RPC 2.0 §5.1: -32000 to -32099 are implementation-defined server errors

_CODES = {500: INTERNAL_ERROR, 503: SERVER_ERROR, 504: SERVER_ERROR, 429: SERVER_ERROR}


def problem(scope: Scope, status: int, slug: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """An RFC 7807 body for the request ``scope`` describes, carrying its request id."""
    body = {
        "type": BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
        "request_id": scope_request_id(scope),
    }
    return body | extensions


def jsonrpc_error(scope: Scope, code: int, message: str, **data: Any) -> dict[str, Any]:
    """A JSON-RPC 2.0 error response to a request whose id is unknown (it was never parsed)."""
    error: dict[str, Any] = {"code": code, "message": message, "data": {"request_id": scope_request_id(scope), **data}}
    return {"jsonrpc": "2.0", "id": None, "error": error}


def refusal(
    scope: Scope,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """The front door's answer to ``scope``: JSON-RPC on MCP endpoints, a problem elsewhere."""
    all_headers = {HEADER: scope_request_id(scope), **(headers or {})}
    if paths.is_mcp(scope.get("path", "")):
        code = _CODES.get(status, INVALID_REQUEST)
        body = jsonrpc_error(scope, code, detail, **extensions)
        return Response(json.dumps(body), status_code=status, media_type="application/json", headers=all_headers)
    content = json.dumps(problem(scope, status, slug, title, detail, **extensions))
    return Response(content, status_code=status, media_type=MEDIA_TYPE, headers=all_headers)
