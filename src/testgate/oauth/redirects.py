"""Redirect URIs: which may be registered, and when a requested one matches (RFC 6749 §3.1.2, RFC 8252).

Allowed: ``https`` URLs; ``http`` only to a loopback host (RFC 8252 §7.3, §8.3); private-use schemes in
reverse-domain form such as ``com.example.app:/cb`` (RFC 8252 §7.1). Never a fragment, credentials, or a
scheme that runs code or reads files. Matching is exact string comparison (OAuth 2.1 §2.3.1), except that a
loopback ``http`` URI matches any port (RFC 8252 §7.3: native apps get an ephemeral port).
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_URI = 2000
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_REFUSED_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "about", "blob", "filesystem", "view-source"})


def problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered as a redirect URI, or None when it can."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI:
        return "a redirect URI must be a string of at most 2000 characters"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri):
        return "a redirect URI must not contain spaces or control characters"
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"{uri!r} is not a valid URI"
    scheme = parts.scheme.lower()
    if "#" in uri:
        return "a redirect URI must not have a fragment (RFC 6749 §3.1.2)"
    if parts.username is not None or parts.password is not None:
        return "a redirect URI must not carry credentials"
    if scheme == "https":
        return None if parts.hostname else "an https redirect URI must name a host"
    if scheme == "http":
        if parts.hostname in LOOPBACK:
            return None
        return "http redirect URIs are allowed only on loopback (RFC 8252 §7.3); use https"
    if "." in scheme and scheme not in _REFUSED_SCHEMES:
        return None  # RFC 8252 §7.1 private-use scheme
    return f"the scheme {scheme or '(none)'!r} is not allowed; use https, loopback http or a reverse-domain scheme"


def matches(registered: list[str], requested: str) -> bool:
    """``requested`` is one of ``registered``, exactly, or up to the port for loopback http (RFC 8252 §7.3)."""
    if requested in registered:
        return True
    try:
        want = urlsplit(requested)
        want.port  # noqa: B018
    except ValueError:
        return False
    if want.scheme != "http" or want.hostname not in LOOPBACK or problem(requested) is not None:
        return False
    for uri in registered:
        have = urlsplit(uri)
        if (
            have.scheme == "http"
            and have.hostname == want.hostname
            and have.path == want.path
            and have.query == want.query
            and have.username is None
        ):
            return True
    return False
