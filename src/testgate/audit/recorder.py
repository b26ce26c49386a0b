"""The recorder: one event per dispatch and per authentication event, chained per organization.

Each event's hash covers a canonical JSON encoding of its fields plus the previous event's hash, so a
removed, edited or reordered event breaks the chain (``testgate audit verify``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.ids import new_id
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow
from testgate.store.tenancy import Organization

Outcome = Literal["allowed", "denied", "error"]
GENESIS = "0" * 64
MAX_ARGUMENT_CHARS = 4000
SECRET_KEYS = ("password", "secret", "token", "authorization", "cookie", "api_key", "apikey")


@dataclass
class Event:
    organization_id: str
    action: str
    outcome: Outcome
    transport: str
    actor_type: str
    actor_id: str | None = None
    actor_name: str = ""
    environment_id: str | None = None
    resources: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""
    confirmation: str | None = None
    request_id: str | None = None
    source_address: str | None = None
    user_agent: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)


def redact(value: Any, sensitive: frozenset[str] = frozenset()) -> Any:
    """Replace secret-looking fields (and the named sensitive ones) with ``***``."""
    if isinstance(value, dict):
        return {k: "***" if _secret_key(k) or k in sensitive else redact(v, sensitive) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, sensitive) for v in value]
    return value


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(s in lowered for s in SECRET_KEYS)


def bound_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(arguments, default=str, sort_keys=True)
    if len(text) <= MAX_ARGUMENT_CHARS:
        return arguments
    return {"_truncated": True, "_preview": text[:MAX_ARGUMENT_CHARS]}


def canonical(row: AuditEventRow) -> bytes:
    """The bytes an event's hash covers (everything but the hash itself)."""
    body = {
        "seq": row.seq,
        "event_id": row.event_id,
        "time": _iso(row.time),
        "organization_id": row.organization_id,
        "environment_id": row.environment_id,
        "actor": [row.actor_type, row.actor_id, row.actor_name],
        "transport": row.transport,
        "action": row.action,
        "resources": row.resources,
        "outcome": row.outcome,
        "reason": row.reason,
        "confirmation": row.confirmation,
        "request_id": row.request_id,
        "source_address": row.source_address,
        "user_agent": row.user_agent,
        "arguments": row.arguments,
        "prev_hash": row.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


async def record(session: AsyncSession, event: Event) -> AuditEventRow:
    """Append ``event`` to its organization's chain inside ``session``'s transaction."""
    # Serialize appends per organization: lock its row, then read the chain's head in a new snapshot.
    await session.execute(select(Organization.id).where(Organization.id == event.organization_id).with_for_update())
    last = (
        await session.execute(
            select(AuditEventRow.seq, AuditEventRow.hash)
            .where(AuditEventRow.organization_id == event.organization_id)
            .order_by(AuditEventRow.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    row = AuditEventRow(
        seq=seq,
        event_id=new_id(),
        time=utcnow(),
        organization_id=event.organization_id,
        environment_id=event.environment_id,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        actor_name=event.actor_name,
        transport=event.transport,
        action=event.action,
        resources=event.resources,
        outcome=event.outcome,
        reason=event.reason[:2000],
        confirmation=event.confirmation,
        request_id=event.request_id,
        source_address=event.source_address,
        user_agent=(event.user_agent or None) and event.user_agent[:400],
        arguments=bound_arguments(redact(event.arguments)),
        prev_hash=prev,
        hash="",
    )
    row.hash = hashlib.sha256(canonical(row)).hexdigest()
    session.add(row)
    await session.flush()
    return row
