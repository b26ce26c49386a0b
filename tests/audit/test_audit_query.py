"""Listing the audit log: filters, keyset pages newest first, owners and admins only, itself audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

import testgate.operations.audit  # noqa: F401  (registers the audit operations)
from testgate.access.principal import Permission, Principal, Role
from testgate.errors import InvalidInput, NotFound, PermissionDenied
from testgate.operations.dispatch import dispatch

if TYPE_CHECKING:
    from tests.audit.conftest import Chain

START = datetime(2026, 3, 1, tzinfo=UTC)


async def _list(chain: Chain, principal: Principal | None = None, **args: Any) -> dict[str, Any]:
    out = await dispatch(chain.platform, chain.call(principal), "audit.list", args)
    return out.model_dump()


async def _seeded(chain: Chain) -> None:
    """Six events an hour apart: workflow.list, workflow.run, testcase.get, twice over."""
    actions = ("workflow.list", "workflow.run", "testcase.get")
    await chain.insert(6, start=START, step=timedelta(hours=1), actions=actions)
    await chain.sql(
        "UPDATE audit_events SET outcome = 'denied', actor_name = 'mallory', actor_id = 'tok-m' "
        "WHERE organization_id = :org AND seq IN (2, 5)"
    )


@pytest.mark.parametrize(
    ("args", "seqs"),
    [
        ({}, [6, 5, 4, 3, 2, 1]),
        ({"action": "workflow.run"}, [5, 2]),
        ({"action": "workflow."}, [5, 4, 2, 1]),
        ({"action": "workflow*"}, [5, 4, 2, 1]),
        ({"outcome": "denied"}, [5, 2]),
        ({"actor": "mallory"}, [5, 2]),
        ({"actor": "tok-ci"}, [6, 4, 3, 1]),
        ({"since": "2026-03-01T02:00:00Z", "until": "2026-03-01T04:00:00Z"}, [4, 3]),
        ({"since": "2026-03-01T05:00:00"}, [6]),
        ({"environment": "dev", "action": "testcase.get"}, [6, 3]),
    ],
)
async def test_filters_select_the_matching_events_newest_first(
    chain: Chain, args: dict[str, Any], seqs: list[int]
) -> None:
    await _seeded(chain)
    found = await _list(chain, **args)
    assert [e["seq"] for e in found["events"]] == seqs


async def test_an_event_carries_its_actor_environment_and_arguments(chain: Chain) -> None:
    await _seeded(chain)
    (event,) = (await _list(chain, limit=1))["events"]
    assert event["id"] == "ev" + "6".zfill(24)
    assert event["actor"] == {"type": "api_token", "id": "tok-ci", "name": "ci-bot"}
    assert (event["environment"], event["transport"], event["request_id"]) == ("dev", "rest", "req-6")
    assert event["resources"] == [{"type": "workflow", "id": "wf-1", "name": "smoke"}]
    assert event["arguments"] == {"limit": 50, "selector": None}


async def test_pages_walk_the_whole_log_without_gaps_or_repeats(chain: Chain) -> None:
    await chain.insert(23, start=START)
    seen: list[int] = []
    cursor = None
    while True:
        page = await _list(chain, limit=5, **({"cursor": cursor} if cursor else {}))
        seen += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Each page call appends an audit.list event, but above the cursor: later pages never see them.
    assert seen == list(range(23, 0, -1))


async def test_reading_the_audit_log_is_itself_audited(chain: Chain) -> None:
    await _seeded(chain)
    await _list(chain, action="workflow.")
    last = (await chain.events())[-1]
    assert (last.action, last.outcome, last.actor_type) == ("audit.list", "allowed", "local")
    assert last.arguments["action"] == "workflow."
    assert last.environment_id is None


@pytest.mark.parametrize("permission", [Permission.READ, Permission.ADMIN])
async def test_a_member_cannot_read_the_audit_log_even_with_admin_in_an_environment(
    chain: Chain, permission: Permission
) -> None:
    member = Principal("api_token", "tok-m", "member-bot", chain.org_id, Role.MEMBER, grants={chain.env_id: permission})
    with pytest.raises(
        PermissionDenied,
        match=r"list_audit_events acts on the whole organization and needs an organization owner or admin; "
        r"you are an organization member \(environment grants do not count here\)$",
    ):
        await _list(chain, member)
    last = (await chain.events())[-1]
    assert (last.action, last.outcome, last.actor_name) == ("audit.list", "denied", "member-bot")


async def test_an_admin_token_reads_the_log_but_an_oauth_cap_below_admin_does_not(chain: Chain) -> None:
    await _seeded(chain)
    admin = Principal("api_token", "tok-a", "admin-bot", chain.org_id, Role.ADMIN)
    assert len((await _list(chain, admin))["events"]) == 6
    capped = Principal("oauth", "u1", "alice", chain.org_id, Role.OWNER, cap=Permission.WRITE)
    with pytest.raises(PermissionDenied):
        await _list(chain, capped)


async def test_another_organizations_log_answers_not_found(chain: Chain) -> None:
    outsider = Principal("api_token", "t", "other", "another-org-id", Role.OWNER)
    with pytest.raises(NotFound, match="organization 'acme' not found"):
        await _list(chain, outsider)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"cursor": "not-a-cursor"}, None),
        ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, ""),
        ({"outcome": "maybe"}, "outcome"),
        ({"environment": "nowhere"}, None),
    ],
)
async def test_bad_filters_are_refused_precisely(chain: Chain, args: dict[str, Any], field: str | None) -> None:
    with pytest.raises((InvalidInput, NotFound)) as info:
        await _list(chain, **args)
    if field is not None:
        assert isinstance(info.value, InvalidInput)
        assert [e.path for e in info.value.errors] == [field]
