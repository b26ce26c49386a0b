"""Verification names the first edited, removed or reordered event, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

import testgate.operations.audit  # noqa: F401  (registers the audit operations)
from testgate.audit.recorder import GENESIS
from testgate.audit.verify import verify
from testgate.operations.dispatch import dispatch

if TYPE_CHECKING:
    from tests.audit.conftest import Chain

START = datetime(2026, 1, 1, tzinfo=UTC)


async def _filled(chain: Chain, count: int = 10) -> Chain:
    await chain.insert(count, start=START)
    return chain


async def test_an_intact_chain_verifies_from_genesis(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    for _ in range(3):
        await dispatch(backend_chain.platform, backend_chain.call(environment="dev"), "label.list", {})
    report = await verify(backend_chain.platform.db, backend_chain.org_id, batch=4)
    assert report.ok, report.problem
    assert (report.checked, report.first_seq, report.last_seq) == (13, 1, 13)
    assert report.head_hash == (await backend_chain.events())[-1].hash


async def test_an_empty_chain_verifies(backend_chain: Chain) -> None:
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.ok
    assert (report.checked, report.head_hash) == (0, GENESIS)


# Tamper: one field of one event edited in SQL; the hash no longer matches that event's content.
async def test_an_event_edited_in_sql_is_named_as_modified(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    await backend_chain.sql("UPDATE audit_events SET outcome = 'denied' WHERE organization_id = :org AND seq = 7")
    report = await verify(backend_chain.platform.db, backend_chain.org_id, batch=3)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("modified", 7)
    assert report.problem.message == f"event seq 7 (id {'ev' + '7'.zfill(24)}) was modified"
    assert report.checked == 6


# Tamper: arguments edited (a JSON column), the most likely place to hide what a call did.
async def test_edited_arguments_are_detected(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    await backend_chain.sql(
        "UPDATE audit_events SET arguments = '{\"limit\": 1}' WHERE organization_id = :org AND seq = 2"
    )
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("modified", 2)


# Tamper: one event deleted; the seq numbers are no longer dense.
async def test_a_deleted_event_is_named_as_missing(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    await backend_chain.sql("DELETE FROM audit_events WHERE organization_id = :org AND seq = 4")
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("missing", 4)
    assert report.problem.message == "event seq 4 is missing (removed)"


# Tamper: the first event deleted; a chain without a checkpoint must start at seq 1.
async def test_a_deleted_first_event_is_named_as_missing(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    await backend_chain.sql("DELETE FROM audit_events WHERE organization_id = :org AND seq <= 2")
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert report.problem.message == "events seq 1-2 are missing (removed)"


# Tamper: two events swap places in the sequence; the first one out of place is named.
async def test_swapped_events_are_named_as_reordered(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    await backend_chain.sql(
        "UPDATE audit_events SET seq = -1 WHERE organization_id = :org AND seq = 5",
        "UPDATE audit_events SET seq = 5 WHERE organization_id = :org AND seq = 6",
        "UPDATE audit_events SET seq = 6 WHERE organization_id = :org AND seq = -1",
    )
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("reordered", 5)
    assert report.problem.event_id == "ev" + "6".zfill(24)
    assert "chained after the event now at seq 6" in report.problem.message


# Tamper: an event deleted and the later ones renumbered to close the gap.
async def test_a_deletion_hidden_by_renumbering_is_still_detected(backend_chain: Chain) -> None:
    await _filled(backend_chain, 5)
    await backend_chain.sql(
        "DELETE FROM audit_events WHERE organization_id = :org AND seq = 3",
        "UPDATE audit_events SET seq = seq - 1 WHERE organization_id = :org AND seq = 4",
        "UPDATE audit_events SET seq = seq - 1 WHERE organization_id = :org AND seq = 5",
    )
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("modified", 3)


# Tamper: the last event deleted; only an anchor kept elsewhere can tell.
async def test_a_truncated_end_is_detected_against_an_anchor(backend_chain: Chain) -> None:
    await _filled(backend_chain)
    last = (await backend_chain.events())[-1]
    await backend_chain.sql("DELETE FROM audit_events WHERE organization_id = :org AND seq = 10")
    assert (await verify(backend_chain.platform.db, backend_chain.org_id)).ok
    report = await verify(backend_chain.platform.db, backend_chain.org_id, anchor=(last.seq, last.hash))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("missing", 10)


# Tamper: the whole chain rewritten consistently; the anchor's hash no longer matches.
async def test_a_rewritten_chain_fails_its_anchor(backend_chain: Chain) -> None:
    await _filled(backend_chain, 3)
    kept = (await backend_chain.events())[1]
    await backend_chain.sql("DELETE FROM audit_events WHERE organization_id = :org")
    await backend_chain.insert(3, start=START + timedelta(days=1))
    report = await verify(backend_chain.platform.db, backend_chain.org_id, anchor=(kept.seq, kept.hash))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("anchor", 2)


# Tamper: a checkpoint inserted by hand to hide the start of the chain; no purge event attests it.
async def test_a_forged_checkpoint_is_not_trusted(backend_chain: Chain) -> None:
    await _filled(backend_chain, 6)
    fourth = (await backend_chain.events())[3]
    await backend_chain.sql(
        "DELETE FROM audit_events WHERE organization_id = :org AND seq <= 4",
        "INSERT INTO audit_checkpoints (organization_id, seq, hash, time, purged, cutoff, created_at) "
        "VALUES (:org, 4, :hash, :time, 4, :time, :time)",
        hash=fourth.hash,
        time=START,
    )
    report = await verify(backend_chain.platform.db, backend_chain.org_id)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("checkpoint", 4)


@pytest.mark.parametrize("through", [3, 10])
async def test_verification_can_stop_at_a_seq(backend_chain: Chain, through: int) -> None:
    await _filled(backend_chain)
    report = await verify(backend_chain.platform.db, backend_chain.org_id, through=through)
    assert report.ok
    assert report.last_seq == through
    assert report.head_hash == (await backend_chain.events())[through - 1].hash


async def test_the_verify_operation_reports_the_problem_and_is_audited(backend_chain: Chain) -> None:
    await _filled(backend_chain, 4)
    await backend_chain.sql("UPDATE audit_events SET actor_name = 'someone' WHERE organization_id = :org AND seq = 2")
    out = (await dispatch(backend_chain.platform, backend_chain.call(), "audit.verify", {})).model_dump()
    assert (out["ok"], out["problem"], out["problem_seq"]) == (False, "modified", 2)
    assert out["message"].startswith("event seq 2 (id ")
    assert (await backend_chain.events())[-1].action == "audit.verify"
