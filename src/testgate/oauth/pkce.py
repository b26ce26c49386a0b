"""PKCE (RFC 7636): the S256 code challenge, for the authorization server and for its clients (the CLI's
login, SSO upstream) alike, without the server's imports."""

from __future__ import annotations

import base64
import hashlib


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")
