"""Authentication events of the authorization server, each written to the audit chain in its own transaction.

Actions: ``oauth.login`` (allowed or denied), ``oauth.consent_granted``, ``oauth.consent_denied``,
``oauth.consent_revoked``, ``oauth.client_registered``, ``oauth.token_issued``, ``oauth.token_revoked``,
``oauth.code_replay_detected`` and ``oauth.refresh_reuse_detected`` (the family was revoked). Pages record
transport ``web``; the token, registration and revocation endpoints ``rest``. No secret is ever an argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from testgate.audit import recorder
from testgate.http.origin import origin_of
from testgate.platform import tenancy
from testgate.platform.context import Platform


@dataclass
class AuthEvent:
    """What happened, to whom, by whom."""

    action: str
    outcome: recorder.Outcome
    organization_id: str | None
    actor_type: str
    actor_id: str | None
    actor_name: str = ""
    environment_id: str | None = None
    resources: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


async def record(platform: Platform, request: Request, event: AuthEvent, *, transport: str) -> None:
    """Append ``event`` (to the default organization's chain when it names none)."""
    async with platform.db.session() as session:
        org_id = event.organization_id
        if org_id is None:
            org_id = (await tenancy.organization_by_slug(session, platform.settings.default_organization)).id
        await recorder.record(
            session,
            recorder.Event(
                organization_id=org_id,
                action=event.action,
                outcome=event.outcome,
                transport=transport,
                actor_type=event.actor_type,
                actor_id=event.actor_id,
                actor_name=event.actor_name,
                environment_id=event.environment_id,
                resources=event.resources,
                reason=event.reason,
                arguments=event.arguments,
                **origin_of(request.scope),
            ),
        )


def client_resource(client_id: str, name: str) -> dict[str, str]:
    """An OAuth client as an event's affected resource."""
    return {"type": "oauth_client", "id": client_id, "name": name}
