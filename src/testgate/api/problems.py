"""RFC 7807 problem details: the one place REST errors become HTTP responses.

    NotFound               404  not-found
    Conflict               409  conflict
    InvalidInput           422  invalid-input         (``errors``: [{path, message}])
    PermissionDenied       403  permission-denied     (``required``, ``held``)
    Unauthenticated        401  unauthenticated       (``WWW-Authenticate: Bearer``, RFC 6750 §3)
    ConfirmationRequired   409  confirmation-required
    ConfirmationRefused    409  confirmation-refused
    LimitExceeded          413  limit-exceeded
    RunnerError            503  runner-unavailable
    StorageUnavailable     503  storage-unavailable
    AuditFailure           503  audit-unavailable
    request validation     422  invalid-input; a body that is not JSON at all: 400 malformed-body
    HTTPException          its status (unknown route 404, wrong method 405, ...)
    anything else          500  internal-error, logged with its stack; the client gets only the request id

Confirmations answer 409: the request conflicts with the operation's requirement of a "yes", and 412 is
reserved for conditional requests (RFC 9110 §15.5.13). Over REST the DELETE verb (and the bulk-delete
POST) is the explicit confirmation, so these appear only if an operation is reached another way.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from testgate.api.request_id import HEADER, request_id_of
from testgate.errors import (
    AuditFailure,
    ConfirmationRefused,
    ConfirmationRequired,
    Conflict,
    InvalidInput,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    RunnerError,
    StorageUnavailable,
    TestgateError,
    Unauthenticated,
    validation_message,
)
from testgate.oauth.metadata import insufficient_scope, www_authenticate
from testgate.oauth.scopes import scope_for_denial

log = structlog.get_logger("testgate.api")

BASE = "https://testgate.dev/problems/"
MEDIA_TYPE = "application/problem+json"
REALM = "testgate"
_STANDARD = frozenset({"type", "title", "status", "detail", "instance", "request_id", "errors"})

# Framework statuses that mean the same as a domain problem share its type.
_HTTP_KINDS = {400: ("malformed-body", "Malformed body"), 413: ("limit-exceeded", "Limit exceeded")}

# error class -> (status, type slug, title)
_KINDS: dict[type[TestgateError], tuple[int, str, str]] = {
    NotFound: (404, "not-found", "Not found"),
    Conflict: (409, "conflict", "Conflict"),
    InvalidInput: (422, "invalid-input", "Invalid input"),
    PermissionDenied: (403, "permission-denied", "Permission denied"),
    Unauthenticated: (401, "unauthenticated", "Authentication required"),
    ConfirmationRequired: (409, "confirmation-required", "Confirmation required"),
    ConfirmationRefused: (409, "confirmation-refused", "Confirmation refused"),
    LimitExceeded: (413, "limit-exceeded", "Limit exceeded"),
    RunnerError: (503, "runner-unavailable", "Runner unavailable"),
    StorageUnavailable: (503, "storage-unavailable", "Artifact storage unavailable"),
    AuditFailure: (503, "audit-unavailable", "Audit unavailable"),
}


class ProblemField(BaseModel):
    path: str = Field(description="where the problem is, e.g. spec.steps[0].timeout or query.limit")
    message: str


class Problem(BaseModel):
    """An RFC 7807 problem details object (extension members allowed)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="a URL naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str = Field(description="the request path")
    request_id: str
    errors: list[ProblemField] | None = Field(default=None, description="each invalid field (422 only)")


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    """A problem+json response for ``request``, carrying its request id (extension members after the standard)."""
    request_id = request_id_of(request)
    body: dict[str, Any] = {
        "type": BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = errors
    body |= {k: v for k, v in extensions.items() if k not in _STANDARD}
    return ProblemResponse(jsonable_encoder(body), status_code=status, headers={HEADER: request_id, **(headers or {})})


def _kind(exc: TestgateError) -> tuple[int, str, str]:
    for cls in type(exc).__mro__:
        if cls in _KINDS:
            return _KINDS[cls]
    return 500, "internal-error", "Internal error"


def _challenge(request: Request, exc: Unauthenticated) -> str:
    """RFC 6750 §3: no error code when no credentials were sent; invalid_token when they were bad.

    On an environment's routes the challenge also names its RFC 9728 metadata, so OAuth clients can
    discover the authorization server from a 401.
    """
    sent = "authorization" in request.headers
    org, env = request.path_params.get("org"), request.path_params.get("env")
    if org and env:
        settings = request.app.state.settings
        error = "invalid_token" if sent else None
        return www_authenticate(settings, org, env, error=error, description=exc.message if sent else None, kind="rest")
    if not sent:
        return f'Bearer realm="{REALM}"'
    description = "".join(c for c in exc.message if c.isprintable() and c not in '"\\')
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


async def on_domain_error(request: Request, exc: Exception) -> ProblemResponse:
    """Map a ``TestgateError`` to its status and problem type."""
    assert isinstance(exc, TestgateError)
    status, slug, title = _kind(exc)
    headers = {"WWW-Authenticate": _challenge(request, exc)} if isinstance(exc, Unauthenticated) else None
    if isinstance(exc, PermissionDenied):
        headers = _step_up(request, exc)
    errors = [{"path": e.path, "message": e.message} for e in exc.errors] if isinstance(exc, InvalidInput) else None
    return problem(request, status, slug, title, exc.message, headers=headers, errors=errors, **exc.details)


def _step_up(request: Request, exc: PermissionDenied) -> dict[str, str] | None:
    """RFC 6750 §3.1 ``insufficient_scope``: the denial came from an OAuth token's scope, not the user's role."""
    principal = getattr(request.state, "principal", None)
    org, env = request.path_params.get("org"), request.path_params.get("env")
    scope = scope_for_denial(principal, exc.details) if principal is not None else None
    if not (scope and org and env):
        return None
    return {"WWW-Authenticate": insufficient_scope(request.app.state.settings, org, env, scope, kind="rest")}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def on_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    """FastAPI's request validation, in the same shape as ``InvalidInput`` (a non-JSON body is 400)."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(request, 400, "malformed-body", "Malformed body", "the request body is not valid JSON")
    fields = [{"path": _field_path(tuple(e.get("loc", ()))), "message": validation_message(e)} for e in errors]
    return problem(request, 422, "invalid-input", "Invalid input", "the request is invalid", errors=fields)


async def on_http_error(request: Request, exc: Exception) -> ProblemResponse:
    """Routing and protocol errors (404 unknown route, 405, 415, ...) as problems."""
    assert isinstance(exc, StarletteHTTPException)
    phrase = _phrase(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else _default_detail(request, exc)
    default = (phrase.lower().replace(" ", "-").replace("'", ""), phrase)
    slug, title = _HTTP_KINDS.get(exc.status_code, default)
    return problem(request, exc.status_code, slug, title, detail, headers=dict(exc.headers or {}))


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _default_detail(request: Request, exc: StarletteHTTPException) -> str:
    if exc.status_code == 404:
        return f"nothing is served at {request.url.path}"
    if exc.status_code == 405:
        return f"{request.method} is not allowed on {request.url.path}"
    return _phrase(exc.status_code)


async def on_crash(request: Request, exc: Exception) -> ProblemResponse:
    """Anything unexpected: logged with its stack and request id; the client never sees the exception text."""
    request_id = request_id_of(request)
    log.error("unhandled error", request_id=request_id, path=request.url.path, exc_info=exc)
    detail = f"an unexpected error occurred; quote request id {request_id} when reporting it"
    return problem(request, 500, "internal-error", "Internal error", detail)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""
    app.add_exception_handler(TestgateError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_crash)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (all problem+json)."""
    return {s: {"model": Problem, "description": HTTPStatus(s).phrase} for s in statuses}
