"""Audit operations: list events, verify the chain, export, purge. Owners and admins only.

Every one of them is dispatched like any other operation, so reading the audit log is itself audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, Field, model_validator

from testgate.access.principal import Permission
from testgate.audit import export, query, recorder, retention
from testgate.audit.verify import verify
from testgate.operations.context import OpContext
from testgate.operations.models import UtcTime
from testgate.operations.registry import Confirmation, operation
from testgate.platform import tenancy
from testgate.platform.pagination import MAX_KEY

Outcome = Literal["allowed", "denied", "error"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditFilter(_In):
    since: UtcTime | None = Field(default=None, description="events at or after this time (UTC unless an offset)")
    until: UtcTime | None = Field(default=None, description="events before this time (UTC unless an offset)")
    environment: str | None = Field(default=None, max_length=63, description="environment id (slug)")
    actor: str | None = Field(default=None, max_length=320, description="the actor's id or name")
    action: str | None = Field(
        default=None, max_length=64, description="an action ('workflow.run') or a prefix ending in '.' ('workflow.')"
    )
    outcome: Outcome | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AuditFilter:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


async def _filters(ctx: OpContext, args: AuditFilter, through_seq: int | None = None) -> query.Filters:
    env = await tenancy.environment_by_slug(ctx.db, ctx.organization, args.environment) if args.environment else None
    return query.Filters(
        since=args.since,
        until=args.until,
        environment_id=env.id if env else None,
        actor=args.actor,
        action=args.action,
        outcome=args.outcome,
        through_seq=through_seq,
    )


class ListAuditIn(AuditFilter):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=200, description="next_cursor of the previous page")


class Actor(BaseModel):
    type: str = Field(description="user, api_token, oauth, local or system")
    id: str | None
    name: str


class AuditEvent(BaseModel):
    id: str
    seq: int
    time: datetime
    environment: str | None = Field(description="environment slug (None: organization-wide, or deleted since)")
    environment_id: str | None
    actor: Actor
    transport: str
    action: str
    resources: list[dict[str, Any]]
    outcome: str
    reason: str
    confirmation: str | None
    request_id: str | None
    source_address: str | None
    user_agent: str | None
    arguments: dict[str, Any] = Field(description="the call's arguments, secrets masked")

    @classmethod
    def of(cls, row: query.AnyRow, slugs: dict[str, str]) -> AuditEvent:
        return cls(
            id=row.event_id,
            seq=row.seq,
            time=row.time,
            environment=slugs.get(row.environment_id or ""),
            environment_id=row.environment_id,
            actor=Actor(type=row.actor_type, id=row.actor_id, name=row.actor_name),
            transport=row.transport,
            action=row.action,
            resources=row.resources,
            outcome=row.outcome,
            reason=row.reason,
            confirmation=row.confirmation,
            request_id=row.request_id,
            source_address=row.source_address,
            user_agent=row.user_agent,
            arguments=row.arguments,
        )


class AuditEventList(BaseModel):
    events: list[AuditEvent]
    next_cursor: str | None


@operation(
    "audit.list",
    tool="list_audit_events",
    title="List audit events",
    permission=Permission.ADMIN,
    input=ListAuditIn,
    output=AuditEventList,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def list_events(ctx: OpContext, args: ListAuditIn) -> AuditEventList:
    """List the organization's audit events, newest first: who did what, where, when and with which
    outcome. Filter by time range, environment, actor, action (or a prefix such as 'workflow.') and
    outcome; page with next_cursor. Owners and admins only; reading the log is itself audited."""
    filters = await _filters(ctx, args)
    rows, cursor = await query.page(ctx.db, ctx.organization.id, filters, limit=args.limit, cursor=args.cursor)
    slugs = await query.environment_slugs(ctx.db, ctx.organization.id)
    return AuditEventList(events=[AuditEvent.of(r, slugs) for r in rows], next_cursor=cursor)


class VerifyIn(_In):
    anchor_seq: int | None = Field(
        default=None, ge=1, le=MAX_KEY, description="seq of an event whose hash was kept elsewhere"
    )
    anchor_hash: str | None = Field(default=None, pattern="^[0-9a-f]{64}$", description="that event's hash")

    @model_validator(mode="after")
    def _pair(self) -> VerifyIn:
        if (self.anchor_seq is None) != (self.anchor_hash is None):
            raise ValueError("anchor_seq and anchor_hash go together")
        return self


class VerifyOut(BaseModel):
    ok: bool
    checked: int = Field(description="events verified")
    first_seq: int | None
    last_seq: int | None
    head_hash: str = Field(description="hash of the last verified event: keep it to anchor a later verification")
    checkpoint_seq: int | None = Field(description="where verification started, after a retention purge")
    problem: Literal["modified", "missing", "reordered", "unlinked", "inserted", "anchor", "checkpoint"] | None
    problem_seq: int | None
    problem_event_id: str | None
    message: str


@operation(
    "audit.verify",
    tool="verify_audit_log",
    title="Verify the audit log",
    permission=Permission.ADMIN,
    input=VerifyIn,
    output=VerifyOut,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def verify_log(ctx: OpContext, args: VerifyIn) -> VerifyOut:
    """Check that no audit event was edited, removed or reordered: recompute every event's hash and
    link in order and report the first problem. Optionally check against a seq and hash kept elsewhere
    (which also detects events cut from the end). Owners and admins only."""
    anchor = (args.anchor_seq, args.anchor_hash) if args.anchor_seq and args.anchor_hash else None
    report = await verify(ctx.db, ctx.organization.id, anchor=anchor)
    problem = report.problem
    message = problem.message if problem else f"the audit log verifies: {report.checked} event(s) intact"
    return VerifyOut(
        ok=report.ok,
        checked=report.checked,
        first_seq=report.first_seq,
        last_seq=report.last_seq,
        head_hash=report.head_hash,
        checkpoint_seq=report.checkpoint.seq if report.checkpoint else None,
        problem=problem.kind if problem else None,
        problem_seq=problem.seq if problem else None,
        problem_event_id=problem.event_id if problem else None,
        message=message,
    )


class ExportIn(AuditFilter):
    format: export.Format = Field(default="jsonl", description="jsonl, csv or ocsf (OCSF 1.1 API Activity)")


class ExportPlan(BaseModel):
    """An authorized export: what the transport then streams."""

    format: export.Format
    organization_id: str
    since: datetime | None
    until: datetime | None
    environment_id: str | None
    actor: str | None
    action: str | None
    outcome: str | None
    through_seq: int = Field(description="the export covers events up to this seq (the log when it was asked)")
    media_type: str
    filename: str
    url: str = Field(description="where the export streams from over REST (an admin token is needed)")

    def filters(self) -> query.Filters:
        return query.Filters(
            since=self.since,
            until=self.until,
            environment_id=self.environment_id,
            actor=self.actor,
            action=self.action,
            outcome=self.outcome,
            through_seq=self.through_seq,
        )


def _export_url(ctx: OpContext, args: ExportIn) -> str:
    params = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in args.model_dump().items() if v is not None}
    base = ctx.platform.settings.base_url
    return f"{base}/api/v1/organizations/{quote(ctx.organization.slug, safe='')}/audit/export?{urlencode(params)}"


@operation(
    "audit.export",
    tool="export_audit_events",
    title="Export audit events",
    permission=Permission.ADMIN,
    input=ExportIn,
    output=ExportPlan,
    scope="organization",
    read_only=True,
    idempotent=True,
)
async def export_events(ctx: OpContext, args: ExportIn) -> ExportPlan:
    """Prepare an export of the organization's audit events (optionally filtered) as JSON Lines, CSV or
    OCSF; returns the URL that streams it over REST. Owners and admins only; the export is audited."""
    through_seq, _ = await recorder.head(ctx.db, ctx.organization.id)
    filters = await _filters(ctx, args, through_seq)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return ExportPlan(
        format=args.format,
        organization_id=ctx.organization.id,
        since=filters.since,
        until=filters.until,
        environment_id=filters.environment_id,
        actor=filters.actor,
        action=filters.action,
        outcome=filters.outcome,
        through_seq=through_seq,
        media_type=export.MEDIA_TYPES[args.format],
        filename=export.filename(ctx.organization.slug, args.format, stamp),
        url=_export_url(ctx, args),
    )


class PurgeIn(_In):
    older_than_days: int | None = Field(
        default=None, ge=1, le=36500, description="default: the configured retention (audit_retention_days)"
    )


class PurgeOut(BaseModel):
    purged: int
    cutoff: datetime
    checkpoint_seq: int | None
    checkpoint_hash: str | None
    message: str


@dataclass(frozen=True)
class _Planned:
    days: int
    plan: retention.Plan


async def _confirm_purge(ctx: OpContext, args: PurgeIn) -> Confirmation:
    days = args.older_than_days or ctx.platform.settings.audit_retention_days
    planned = await retention.plan(ctx.db, ctx.organization.id, retention.cutoff_for(days))
    when = planned.cutoff.strftime("%Y-%m-%d %H:%M UTC")
    if planned.through_seq is None:
        return Confirmation(
            f"No audit event of '{ctx.organization.slug}' is older than {days} day(s) (before {when}): "
            "nothing will be deleted. Continue?"
        )
    return Confirmation(
        f"Permanently delete {planned.count} audit event(s) of '{ctx.organization.slug}' older than {days} day(s) "
        f"(before {when}, up to seq {planned.through_seq})? A checkpoint keeps the rest verifiable.",
        subject=_Planned(days, planned),
    )


@operation(
    "audit.purge",
    tool="purge_audit_events",
    title="Purge old audit events",
    permission=Permission.ADMIN,
    input=PurgeIn,
    output=PurgeOut,
    scope="organization",
    destructive=True,
    confirm=_confirm_purge,
)
async def purge_events(ctx: OpContext, args: PurgeIn) -> PurgeOut:
    """Delete audit events older than the retention (or older_than_days), leaving a checkpoint so the
    rest still verifies; refused if the part to delete does not verify. Destructive: the user confirms
    the count first. The server also applies the retention by itself every hour."""
    confirmed: _Planned | None = ctx.confirmed
    days = confirmed.days if confirmed else args.older_than_days or ctx.platform.settings.audit_retention_days
    report = retention.PurgeReport(ctx.organization.id, retention.cutoff_for(days), 0)
    if confirmed is not None and confirmed.plan.through_seq is not None:
        through = confirmed.plan.through_seq
        expected = await retention.verified_head(ctx.db, ctx.organization.id, through)
        report = await retention.purge_through(
            ctx.db, ctx.organization.id, through_seq=through, expected_hash=expected, cutoff=confirmed.plan.cutoff
        )
    ctx.audit_arguments = report.arguments(days)
    if report.purged:
        resource = retention.checkpoint_resource(report)
        ctx.touch(resource["type"], resource["id"], resource["name"])
    return PurgeOut(
        purged=report.purged,
        cutoff=report.cutoff,
        checkpoint_seq=report.checkpoint_seq,
        checkpoint_hash=report.checkpoint_hash,
        message=f"purged {report.purged} audit event(s) older than {days} day(s)",
    )
