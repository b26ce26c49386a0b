"""Reading OAuth requests: form bodies (RFC 6749 §3.2) and client credentials (RFC 6749 §2.3.1)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, unquote

from fastapi import Request

from testgate.oauth.clients import Credentials
from testgate.oauth.errors import InvalidClient, OAuthError

MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"


async def _body(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise OAuthError(f"the request body is larger than {limit} bytes")
    return bytes(body)


async def form_fields(request: Request, *, limit: int = MAX_BODY) -> dict[str, str]:
    """The form's parameters; each MUST appear once (RFC 6749 §3.2) and the body MUST be form-encoded."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        raise OAuthError(f"the body must be {FORM}")
    try:
        pairs = parse_qsl((await _body(request, limit)).decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("the body is not UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise OAuthError(f"the parameter {name!r} is repeated (RFC 6749 §3.2)")
        fields[name] = value
    return fields


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("the Basic credentials are malformed", basic=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("the Basic credentials are malformed", basic=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def client_credentials(request: Request, fields: dict[str, str]) -> Credentials:
    """Who the client says it is, and how it proves it; one method only (RFC 6749 §2.3)."""
    basic = _basic(request.headers.get("authorization", ""))
    if basic is not None:
        client_id, secret = basic
        if "client_secret" in fields:
            raise OAuthError("use one client authentication method, not two (RFC 6749 §2.3)")
        if fields.get("client_id", client_id) != client_id:
            raise InvalidClient("client_id differs from the Basic credentials", basic=True)
        return Credentials(client_id, secret, "client_secret_basic")
    client_id = fields.get("client_id", "")
    if not client_id:
        raise InvalidClient("client_id is required")
    posted = fields.get("client_secret")
    return Credentials(client_id, posted, "client_secret_post" if posted is not None else "none")
