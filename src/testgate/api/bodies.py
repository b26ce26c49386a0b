"""Request bodies the generated routes do not parse themselves: YAML, JSON read by hand, text encodings."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request
from starlette.types import Message

from testgate import jsontext
from testgate.errors import FieldError, InvalidInput

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPE = "application/json"


def media_type(request: Request) -> str:
    """The request's media type without parameters, lower-cased ('' when absent)."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def utf8(data: bytes, what: str = "the request body") -> str:
    """``data`` decoded as UTF-8; 400 if it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, f"{what} is not UTF-8 text") from None


def json_object(data: bytes) -> dict[str, Any]:
    """``data`` parsed as a JSON object; 400 if it is not JSON or not an object."""
    try:
        value = jsontext.loads(data)
    except ValueError:
        raise HTTPException(400, "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise HTTPException(400, "the request body must be a JSON object")
    return value


def unsupported(expected: str) -> HTTPException:
    """A 415 naming what the route accepts."""
    return HTTPException(415, f"unsupported content type; send {expected}")


def json_only(request: Request) -> None:
    """A route dependency: a body in any media type but JSON (or one without a Content-Type) is a 415, not
    a validation error about its contents (curl's ``-d`` sends a form). An empty body passes whatever its
    type: the route's fields are then all optional, or their absence is named."""
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return  # no body (curl -X POST -d '' still names a form type): nothing was sent in the wrong type
    kind = media_type(request)
    if kind != JSON_TYPE and not kind.endswith("+json"):
        raise unsupported(JSON_TYPE)


JSON_ONLY = Depends(json_only)


async def no_body(request: Request) -> None:
    """A route dependency for routes that take no body: an empty body, ``{}`` or ``null`` passes; anything
    else is refused naming what was sent, not ignored (a ``{"reason": …}`` sent with an abort would
    otherwise look recorded)."""
    data = await request.body()
    if not data.strip():
        return
    try:
        value = jsontext.loads(data)
    except ValueError:
        value = data
    if value is None or value == {}:
        return
    if isinstance(value, dict):
        errors = [FieldError(str(name), "unknown field: this route takes no request body") for name in sorted(value)]
        raise InvalidInput("this route takes no request body", errors=errors)
    raise InvalidInput("this route takes no request body; send none")


NO_BODY = Depends(no_body)


def wants_json(request: Request) -> bool:
    """True when the client asked for JSON rather than the route's native representation."""
    accept = request.headers.get("accept", "").lower()
    return JSON_TYPE in accept and "yaml" not in accept


def too_large(detail: str) -> HTTPException:
    """A 413; an HTTPException, so FastAPI's own body parsing passes it on instead of calling it a 400."""
    return HTTPException(413, detail)


def bounded(request: Request, limit: int) -> Request:
    """``request`` reading at most ``limit`` body bytes; 413 past that (or when Content-Length says so)."""
    declared = request.headers.get("content-length", "")
    receive = request.receive
    received = 0

    async def receive_bounded() -> Message:
        nonlocal received
        if declared.isdigit() and int(declared) > limit:
            raise too_large(f"the request body is {declared} bytes; the limit is {limit}")
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large(f"the request body is larger than {limit} bytes")
        return message

    return Request(request.scope, receive_bounded)
