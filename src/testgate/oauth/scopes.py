"""Scopes: ``testgate:read`` < ``testgate:run`` < ``testgate:write`` cap an OAuth token's permission.

No scope grants admin: organization administration needs an API token (or a future ``testgate:admin``), so
a token a person hands to an AI agent can never manage members, tokens or environments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from testgate.access.principal import Permission, Principal

READ, RUN, WRITE = "testgate:read", "testgate:run", "testgate:write"
SUPPORTED = (READ, RUN, WRITE)
DEFAULT = READ
_CAPS = {READ: Permission.READ, RUN: Permission.RUN, WRITE: Permission.WRITE}
# Requested for refresh tokens by some clients (OIDC, SEP-2207); refresh tokens are always issued here.
_IGNORED = frozenset({"offline_access"})
DESCRIPTIONS = {
    READ: "see workflows, executions, logs, results and artifacts",
    RUN: "run and abort workflows, and everything read allows",
    WRITE: "create, change and delete workflows and test cases, and everything run allows",
}


class UnknownScope(ValueError):
    """A requested scope this server does not offer."""


def parse(scope: str | None) -> tuple[str, ...]:
    """The requested testgate scopes in canonical order (``DEFAULT`` when none); ``UnknownScope`` otherwise."""
    names = set((scope or "").split()) - _IGNORED
    unknown = names - set(SUPPORTED)
    if unknown:
        raise UnknownScope(f"unknown scope {sorted(unknown)[0]!r}; this server offers {' '.join(SUPPORTED)}")
    chosen = tuple(s for s in SUPPORTED if s in names)
    return chosen or (DEFAULT,)


def cap(scopes: tuple[str, ...] | str) -> Permission:
    """The highest permission the scopes allow (each scope includes the ones below it)."""
    names = scopes.split() if isinstance(scopes, str) else scopes
    return max((_CAPS[s] for s in names if s in _CAPS), default=Permission.NONE)


def within(wanted: tuple[str, ...] | str, granted: tuple[str, ...] | str) -> bool:
    """Whether ``wanted`` asks for no more than ``granted`` allows. Scopes nest, so a client registered for
    (or a person who allowed, or a refresh token holding) ``testgate:write`` may ask for ``testgate:read``
    alone (RFC 6749 §3.3, §6: least privilege)."""
    return cap(wanted) <= cap(granted)


def covering(permission: Permission) -> str | None:
    """The scope that allows ``permission``, or None when no scope can (admin)."""
    for name, granted in _CAPS.items():
        if granted >= permission:
            return name
    return None


def scope_for_denial(principal: Principal, details: Mapping[str, object]) -> str | None:
    """``scope_needed`` from a ``PermissionDenied``'s details (``required``): what REST and MCP have at hand.

    An OAuth principal holds a grant in one environment only (its token's audience), so that grant is the
    user's own permission there.
    """
    label = details.get("required")
    if principal.kind != "oauth" or not isinstance(label, str):
        return None
    try:
        required = Permission.parse(label)
    except ValueError:
        return None
    own = max(principal.grants.values(), default=Permission.NONE)
    return covering(required) if principal.cap < required <= own else None


def scope_needed(principal: Principal, environment_id: str | None, required: Permission) -> str | None:
    """The scope to ask for when a denial was caused by the token's scope cap, not by the user's role.

    RFC 6750 §3.1 ``insufficient_scope``: only worth a step-up when the user's own permission would allow it.
    """
    if principal.kind != "oauth" or principal.cap >= required:
        return None
    uncapped = replace(principal, cap=Permission.ADMIN).permission_in(environment_id)
    return covering(required) if uncapped >= required else None
