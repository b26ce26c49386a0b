"""The audit log page (owners and admins): a filterable table, exports, and chain verification.

    GET /ui/{org}/{env}/audit            audit.list (since, until, environment, actor, action, outcome, cursor);
                                         with verify=1 also audit.verify
    GET /ui/{org}/{env}/audit/export     audit.export (format=jsonl|csv|ocsf, the same filters), then the
                                         events stream as an attachment, oldest first, in constant memory

Every one of these is dispatched, so a member who is not an admin gets a 403 page and an audited refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, StreamingResponse

from testgate.audit import export
from testgate.operations.audit import AuditEventList, ExportPlan, VerifyOut
from testgate.web import forms
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
Text = Annotated[str, Query(max_length=320)]
OUTCOMES = ("allowed", "denied", "error")
PAGE = 50


class Filters:
    """The page's filter fields, as typed and as the operations take them."""

    def __init__(
        self,
        since: Text = "",
        until: Text = "",
        environment: Text = "",
        actor: Text = "",
        action: Text = "",
        outcome: Annotated[Literal["", "allowed", "denied", "error"], Query()] = "",
    ) -> None:
        self.typed = {
            "since": since,
            "until": until,
            "environment": environment,
            "actor": actor,
            "action": action,
            "outcome": outcome,
        }

    def args(self) -> dict[str, Any]:
        values: dict[str, Any] = forms.optional(self.typed, "environment", "actor", "action", "outcome")
        for name in ("since", "until"):
            moment = forms.utc_time(self.typed[name], name)
            if moment:
                values[name] = moment
        return values

    def query(self, **extra: str) -> str:
        return urlencode({**{k: v for k, v in self.typed.items() if v}, **extra})


Filtered = Annotated[Filters, Depends()]


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    c: Con,
    filters: Filtered,
    cursor: Annotated[str, Query(max_length=200)] = "",
    verify: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """The organization's audit events, newest first, 50 a page."""
    args = filters.args() | {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
    listed = await c.run(AuditEventList, "audit.list", args, scope="organization")
    checked = await c.run(VerifyOut, "audit.verify", scope="organization") if verify else None
    return c.page(
        "audit.html",
        title="Audit log",
        section="audit",
        events=listed.events,
        filters=filters.typed,
        outcomes=OUTCOMES,
        environments=[e.slug for e in c.identity.environments],
        next_page=f"?{filters.query(cursor=listed.next_cursor)}" if listed.next_cursor else None,
        exports={fmt: f"{c.base}/audit/export?{filters.query(format=fmt)}" for fmt in export.FORMATS},
        verify_url=f"?{filters.query(verify='1')}",
        verification=checked,
    )


async def _encoded(chunks: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.encode()


@router.get("/audit/export")
async def export_events(
    c: Con, filters: Filtered, format: Annotated[export.Format, Query()] = "jsonl"
) -> StreamingResponse:
    """Download the matching events as JSON Lines, CSV or OCSF; the export is audited before it streams."""
    plan = await c.run(ExportPlan, "audit.export", filters.args() | {"format": format}, scope="organization")
    chunks = export.stream(c.platform.db, plan.organization_id, plan.format, plan.filters())
    headers = {
        "Content-Disposition": f'attachment; filename="{plan.filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    return StreamingResponse(_encoded(chunks), media_type=plan.media_type, headers=headers)
