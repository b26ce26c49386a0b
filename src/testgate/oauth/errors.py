"""OAuth errors, and the one place they become RFC 6749 §5.2 / RFC 7591 §3.2.2 / RFC 7009 JSON responses.

    TestgateError
    └── OAuthError             ``error`` is the registered code; ``status`` the HTTP status
        └── InvalidClient      401 invalid_client (RFC 6749 §5.2), with a Basic challenge when Basic was tried

Authorization-endpoint errors are not raised through here: they are redirected to the client (RFC 6749
§4.1.2.1) or, when the client or redirect URI cannot be trusted, shown to the person (``authorize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from fastapi import Request
from fastapi.responses import JSONResponse

from testgate.errors import TestgateError

ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "unsupported_token_type",
    "access_denied",
    "temporarily_unavailable",
]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class OAuthError(TestgateError):
    """An OAuth protocol error with its registered ``error`` code."""

    code: ClassVar[str] = "oauth_error"
    error: ErrorCode = "invalid_request"
    status: int = 400


@dataclass
class InvalidClient(OAuthError):
    """RFC 6749 §5.2: client authentication failed, or the client is unknown."""

    error: ErrorCode = "invalid_client"
    status: int = 401
    basic: bool = False


def description(text: str) -> str:
    """RFC 6749 §5.2: ``error_description`` is limited to printable ASCII without ``"`` and ``\\``."""
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')[:500]


def error_response(exc: OAuthError) -> JSONResponse:
    """The JSON error body (never cached); 401s carry the challenge RFC 6749 §5.2 asks for."""
    headers = dict(NO_STORE)
    if isinstance(exc, InvalidClient) and exc.basic:
        headers["WWW-Authenticate"] = 'Basic realm="testgate"'
    body = {"error": exc.error, "error_description": description(exc.message)}
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def on_oauth_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI exception handler for ``OAuthError``."""
    assert isinstance(exc, OAuthError)
    return error_response(exc)
