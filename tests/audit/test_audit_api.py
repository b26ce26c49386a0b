"""The audit log over REST: bearer-authenticated, admins only, audited, exports streamed."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.api import audit as audit_api
from testgate.api import problems

if TYPE_CHECKING:
    from tests.audit.conftest import Chain

AUDIT = "/api/v1/organizations/acme/audit"
START = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def client(chain: Chain) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    problems.install(app)
    app.include_router(audit_api.router)
    app.state.platform = chain.platform
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def _token(chain: Chain, role: Role, grants: dict[str, Permission] | None = None) -> dict[str, str]:
    async with chain.platform.db.session() as session:
        issued = await tokens.issue(
            session,
            organization_id=chain.org_id,
            name=f"{role.value}-bot",
            role=role,
            grants=grants or {},
            created_by=None,
            expires_at=None,
        )
    return {"Authorization": f"Bearer {issued.secret}", "User-Agent": "audit-test/1"}


async def test_an_admin_token_lists_filtered_events_and_the_read_is_audited(
    chain: Chain, client: httpx.AsyncClient
) -> None:
    await chain.insert(4, start=START, step=timedelta(hours=1), actions=("workflow.list", "workflow.run"))
    headers = await _token(chain, Role.ADMIN)
    response = await client.get(AUDIT, params={"action": "workflow.run", "limit": 1}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["seq"] for e in body["events"]] == [4]
    assert body["next_cursor"]
    more = await client.get(AUDIT, params={"action": "workflow.run", "cursor": body["next_cursor"]}, headers=headers)
    assert [e["seq"] for e in more.json()["events"]] == [2]
    last = (await chain.events())[-1]
    assert (last.action, last.transport, last.actor_name, last.user_agent) == (
        "audit.list",
        "rest",
        "admin-bot",
        "audit-test/1",
    )


async def test_time_filters_arrive_as_iso_text_in_the_audit_record(chain: Chain, client: httpx.AsyncClient) -> None:
    headers = await _token(chain, Role.ADMIN)
    response = await client.get(AUDIT, params={"since": "2026-04-01T00:00:00Z"}, headers=headers)
    assert response.status_code == 200
    assert (await chain.events())[-1].arguments["since"] == "2026-04-01T00:00:00Z"


async def test_without_a_token_the_audit_log_answers_401(client: httpx.AsyncClient) -> None:
    response = await client.get(AUDIT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_member_token_is_forbidden_and_the_attempt_is_audited(chain: Chain, client: httpx.AsyncClient) -> None:
    headers = await _token(chain, Role.MEMBER, {chain.env_id: Permission.ADMIN})
    response = await client.get(f"{AUDIT}/export", headers=headers)
    assert response.status_code == 403
    assert response.json()["type"].endswith("/permission-denied")
    last = (await chain.events())[-1]
    assert (last.action, last.outcome) == ("audit.export", "denied")


async def test_the_csv_export_streams_as_an_attachment_after_its_own_audit_event(
    chain: Chain, client: httpx.AsyncClient
) -> None:
    await chain.insert(3, start=START, reason="=cmd|' /C calc'!A0")
    headers = await _token(chain, Role.ADMIN)
    response = await client.get(f"{AUDIT}/export", params={"format": "csv"}, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="audit-acme-')
    assert response.headers["cache-control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    # The export covers the log as it was when asked: its own audit event comes right after.
    assert [r["seq"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["reason"] == "'=cmd|' /C calc'!A0"
    last = (await chain.events())[-1]
    assert (last.seq, last.action, last.arguments["format"]) == (4, "audit.export", "csv")


async def test_the_ocsf_export_is_json_lines_of_api_activity(chain: Chain, client: httpx.AsyncClient) -> None:
    await chain.insert(2, start=START)
    headers = await _token(chain, Role.ADMIN)
    response = await client.get(f"{AUDIT}/export", params={"format": "ocsf", "environment": "dev"}, headers=headers)
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [(e["class_uid"], e["unmapped"]["seq"]) for e in events] == [(6003, 1), (6003, 2)]


async def test_an_unknown_format_is_refused_before_anything_is_read(chain: Chain, client: httpx.AsyncClient) -> None:
    headers = await _token(chain, Role.ADMIN)
    response = await client.get(f"{AUDIT}/export", params={"format": "xml"}, headers=headers)
    assert response.status_code == 422
    assert await chain.events() == []
