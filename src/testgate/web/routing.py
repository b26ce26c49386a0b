"""The console's route class: the one place where console errors become pages, and headers are added.

Unauthenticated        303 to /login?next=<this page> (401 for a stream or a post)
PermissionDenied       403 page          (dispatch audited the refusal)
NotFound               404 page
InvalidInput           422 page naming each field
Conflict, Confirmation 409 page
LimitExceeded          413 page
RunnerError, Audit…    503 page
StorageUnavailable     503 page
no route under /ui     404 page (``unmatched``; elsewhere the REST API's problem)
once.Unavailable       503 page          (a single-use form could not be checked)
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

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
from testgate.web import once, pages
from testgate.web.context import page_outside

CHECK = "Check what you entered"
_KINDS: list[tuple[type[TestgateError], int, str]] = [
    (PermissionDenied, 403, "Not allowed"),
    (NotFound, 404, "Not found"),
    (InvalidInput, 422, CHECK),
    (ConfirmationRequired, 409, "Not confirmed"),
    (ConfirmationRefused, 409, "Not confirmed"),
    (Conflict, 409, "Conflict"),
    (LimitExceeded, 413, "Too large"),
    (RunnerError, 503, "Runner unavailable"),
    (StorageUnavailable, 503, "Artifact storage unavailable"),
    (AuditFailure, 503, "Audit unavailable"),
    (once.Unavailable, 503, "Try again shortly"),
]


async def error_page(request: Request, status: int, title: str, message: str, details: list[str]) -> Response:
    """A refusal or failure, told to the person (the audit event was written by dispatch).

    A signed-in person keeps the sign-out control, and the way back never leads to this same page
    (someone with no environment is refused ``/ui`` itself).
    """
    back = None if request.url.path.rstrip("/") == pages.HOME else pages.HOME
    context = {"title": title, "message": message, "details": details, "back": back}
    return await page_outside(request, "error.html", status, **context)


async def error_response(request: Request, exc: TestgateError) -> Response:
    """The page telling the person why their request was refused or failed."""
    status, title = next(((s, t) for kind, s, t in _KINDS if isinstance(exc, kind)), (400, "Request failed"))
    details = [str(e) for e in exc.errors] if isinstance(exc, InvalidInput) else []
    return await error_page(request, status, title, pages.sentence(exc.message), details)


def unmatched(fallback: ASGIApp) -> ASGIApp:
    """The application's answer when no route matches: under ``/ui`` the console's 404 page, else ``fallback``."""

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] != "http" or not (path == pages.HOME or path.startswith(f"{pages.HOME}/")):
            await fallback(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await error_page(request, 404, "Not found", "There is no console page at this address.", [])
        await pages.secure(response)(scope, receive, send)

    return not_found


def sign_in(request: Request) -> Response:
    """Send a browser that is not signed in to the sign-in page, to come back here afterwards."""
    if request.method != "GET" or "text/event-stream" in request.headers.get("accept", ""):
        return pages.error_page(401, "Signed out", "Your session has ended. Sign in again.")
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)


class ConsoleRoute(APIRoute):
    """A console route: domain errors and invalid parameters become pages; every answer gets the headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except Unauthenticated:
                response = sign_in(request)
            except TestgateError as exc:
                response = await error_response(request, exc)
            except RequestValidationError as exc:
                fields = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {validation_message(e)}" for e in exc.errors()]
                response = await error_page(request, 422, CHECK, "Some values are not valid.", fields)
            return pages.secure(response)

        return guarded
