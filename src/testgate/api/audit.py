"""The audit log over REST (owners and admins): list events as JSON, stream exports.

    GET /api/v1/organizations/{org}/audit           list_audit_events (since, until, environment, actor,
                                                    action, outcome, limit, cursor)
    GET /api/v1/organizations/{org}/audit/export    export_audit_events (format=jsonl|csv|ocsf, filters)

Both dispatch an operation first, so authorization and the audit event come before any event is read;
the export then streams keyset batches, in constant memory however long the log is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import StreamingResponse

from testgate.api.context import dispatch_as, org_call, platform_of
from testgate.api.routing import org_router
from testgate.audit import export
from testgate.operations.audit import AuditEventList, ExportPlan, Outcome
from testgate.operations.context import Call

ERROR_STATUSES = (400, 401, 403, 404, 422, 500, 503)


router = org_router(ERROR_STATUSES, tags=["audit"])


def audit_filters(
    since: Annotated[datetime | None, Query(description="events at or after this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="events before this time (ISO 8601)")] = None,
    environment: Annotated[str | None, Query(max_length=63, description="environment id (slug)")] = None,
    actor: Annotated[str | None, Query(max_length=320, description="the actor's id or name")] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="an action, or a prefix ending in '.' ('workflow.')")
    ] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
) -> dict[str, Any]:
    """The filter arguments of a request, as the operation takes them (times as ISO 8601 text)."""
    values: dict[str, Any] = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "environment": environment,
        "actor": actor,
        "action": action,
        "outcome": outcome,
    }
    return {k: v for k, v in values.items() if v is not None}


Caller = Annotated[Call, Depends(org_call)]
Filters = Annotated[dict[str, Any], Depends(audit_filters)]


@router.get(
    "/audit",
    response_model=AuditEventList,
    operation_id="list_audit_events",
    summary="List audit events",
)
async def list_audit_events(
    request: Request,
    call: Caller,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> AuditEventList:
    """The organization's audit events, newest first; page with ``cursor``. Reading them is audited."""
    args = {**filters, "limit": limit} | ({"cursor": cursor} if cursor else {})
    return await dispatch_as(AuditEventList, request, call, "audit.list", args)


_EXPORTED = {
    "description": "the events, oldest first, as an attachment",
    "content": {
        "application/x-ndjson": {"schema": {"type": "string", "description": "JSON Lines (jsonl, ocsf)"}},
        "text/csv": {"schema": {"type": "string", "description": "CSV with a header row"}},
    },
}


async def _encoded(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.encode()


@router.get(
    "/audit/export",
    response_class=StreamingResponse,
    operation_id="export_audit_events",
    summary="Export audit events",
    responses={200: _EXPORTED},
)
async def export_audit_events(
    request: Request,
    call: Caller,
    filters: Filters,
    format: Annotated[export.Format, Query(description="jsonl, csv or ocsf (OCSF 1.1 API Activity)")] = "jsonl",
) -> StreamingResponse:
    """Stream the organization's audit events as JSON Lines, CSV or OCSF. The export is audited first."""
    plan = await dispatch_as(ExportPlan, request, call, "audit.export", {**filters, "format": format})
    chunks = export.stream(platform_of(request).db, plan.organization_id, plan.format, plan.filters())
    headers = {
        "Content-Disposition": f'attachment; filename="{plan.filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(_encoded(chunks), media_type=plan.media_type, headers=headers)
