"""dispatch: isolation, authorization, validation, confirmation and exactly one audit event per call."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from testgate.access.principal import Permission, Principal, Role, local_owner
from testgate.audit import recorder
from testgate.errors import (
    AuditFailure,
    ConfirmationRefused,
    ConfirmationRequired,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from testgate.operations import registry as reg
from testgate.operations.context import Call, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.executions import ExecutionRow
from testgate.store.workflows import CaseRow, WorkflowRow

FLOW = """
kind: TestWorkflow
metadata: {name: smoke}
spec:
  config:
    token: {sensitive: true}
    level: {default: "1"}
  steps: [{name: one, shell: echo one}]
"""


class RecordingExecutor:
    """An executor double that only records what it was handed (the runner has its own tests)."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, dict[str, str]]] = []

    async def start(self) -> None:
        return None

    async def submit(self, execution_id: str, secrets: Mapping[str, str]) -> None:
        self.submitted.append((execution_id, dict(secrets)))

    async def abort(self, execution_id: str) -> bool:
        return False

    async def close(self) -> None:
        return None


async def _ids(platform: Platform) -> tuple[str, str]:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
        return org.id, env.id


def _member(org_id: str, env_id: str, permission: Permission) -> Principal:
    return Principal("api_token", "tok1", "ci-bot", org_id, Role.MEMBER, grants={env_id: permission})


async def _events(platform: Platform) -> list[AuditEventRow]:
    async with platform.db.session() as session:
        return list(await session.scalars(select(AuditEventRow).order_by(AuditEventRow.seq)))


async def _owner_call(platform: Platform) -> Call:
    """A call by acme's local owner in dev, on a platform other than the ``call`` fixture's."""
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
    return Call(local_owner(org.id), "acme", "dev")


async def _count(platform: Platform, model: type[Any]) -> int:
    async with platform.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _confirmer(outcome: ConfirmOutcome, asked: list[str] | None = None):  # type: ignore[no-untyped-def]
    async def confirm(message: str) -> ConfirmOutcome:
        if asked is not None:
            asked.append(message)
        return outcome

    return confirm


def test_every_operation_is_declared_completely() -> None:
    ops = reg.registry()
    assert len({op.tool for op in ops.values()}) == len(ops)
    for op in ops.values():
        assert op.description, op.name
        assert op.input.model_config.get("extra") == "forbid", op.name
        assert issubclass(op.output, BaseModel)
        assert not (op.read_only and op.destructive), op.name
        # An environment reader must not be able to change that environment.
        if op.scope == "environment" and op.permission == Permission.READ:
            assert op.read_only, op.name


async def test_a_successful_call_writes_exactly_one_allowed_event_with_its_resources(
    platform: Platform, call: Call
) -> None:
    out = await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    assert out.model_dump()["name"] == "smoke"
    (event,) = await _events(platform)
    assert (event.action, event.outcome, event.actor_type) == ("workflow.create", "allowed", "local")
    assert event.resources[0]["type"] == "workflow"
    assert event.resources[0]["name"] == "smoke"
    assert event.prev_hash == recorder.GENESIS


async def test_a_member_with_read_can_list_but_not_run_and_the_denial_is_audited(platform: Platform) -> None:
    org_id, env_id = await _ids(platform)
    reader = Call(_member(org_id, env_id, Permission.READ), "acme", "dev", transport="rest")
    await dispatch(platform, reader, "workflow.list", {})
    with pytest.raises(PermissionDenied, match="needs run permission; you have read"):
        await dispatch(platform, reader, "workflow.run", {"name": "smoke"})
    events = await _events(platform)
    assert [(e.action, e.outcome) for e in events] == [("workflow.list", "allowed"), ("workflow.run", "denied")]
    assert events[1].actor_name == "ci-bot"
    assert events[1].transport == "rest"


async def test_an_organization_wide_operation_says_it_needs_an_organization_admin_not_more_environment_permission(
    platform: Platform,
) -> None:
    # An environment admin asking for the organization's audit log: the refusal names what is missing (an
    # organization role), not an environment permission the caller already holds.
    org_id, env_id = await _ids(platform)
    env_admin = Call(_member(org_id, env_id, Permission.ADMIN), "acme", "dev", transport="mcp-http")
    capped = Principal("api_token", "tok2", "ro", org_id, Role.ADMIN, cap=Permission.READ)
    with pytest.raises(PermissionDenied) as member:
        await dispatch(platform, env_admin, "audit.list", {})
    with pytest.raises(PermissionDenied) as read_only:
        await dispatch(platform, Call(capped, "acme", "dev", transport="mcp-http"), "audit.list", {})
    assert str(member.value) == (
        "list_audit_events acts on the whole organization and needs an organization owner or admin; "
        "you are an organization member (environment grants do not count here)"
    )
    assert str(read_only.value).endswith("you are an organization admin, but this credential is limited to read")
    events = await _events(platform)
    assert [(e.action, e.outcome) for e in events] == [("audit.list", "denied"), ("audit.list", "denied")]


async def test_another_organization_answers_not_found_never_forbidden(platform: Platform) -> None:
    outsider = Principal("api_token", "t2", "other", "some-other-org-id", Role.OWNER)
    with pytest.raises(NotFound, match="organization 'acme' not found"):
        await dispatch(platform, Call(outsider, "acme", "dev"), "workflow.list", {})


async def test_an_environment_without_a_grant_answers_not_found(platform: Platform) -> None:
    org_id, _ = await _ids(platform)
    stranger = _member(org_id, "another-env-id", Permission.ADMIN)
    with pytest.raises(NotFound, match="environment 'dev' not found"):
        await dispatch(platform, Call(stranger, "acme", "dev"), "workflow.list", {})
    (event,) = await _events(platform)
    assert event.outcome == "denied"


async def test_invalid_arguments_name_the_field_and_are_audited_as_errors(platform: Platform, call: Call) -> None:
    with pytest.raises(InvalidInput) as info:
        await dispatch(platform, call, "execution.list", {"limit": "many", "surprise": 1})
    paths = {e.path for e in info.value.errors}
    assert paths == {"limit", "surprise"}
    (event,) = await _events(platform)
    assert (event.outcome, event.action) == ("error", "execution.list")


async def test_run_submits_after_commit_with_secrets_only_in_memory(platform: Platform, call: Call) -> None:
    executor = RecordingExecutor()
    platform.executor = executor
    await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    out = await dispatch(platform, call, "workflow.run", {"name": "smoke", "config": {"token": "hunter2-secret"}})
    execution_id = out.model_dump()["id"]
    assert executor.submitted == [(execution_id, {"token": "hunter2-secret"})]
    events = await _events(platform)
    assert events[-1].arguments["config"] == {"token": "***", "level": "1"}
    assert "hunter2-secret" not in repr([(e.arguments, e.reason) for e in events])


async def test_a_denied_run_never_records_config_values(platform: Platform) -> None:
    org_id, env_id = await _ids(platform)
    reader = Call(_member(org_id, env_id, Permission.READ), "acme", "dev")
    with pytest.raises(PermissionDenied):
        await dispatch(platform, reader, "workflow.run", {"name": "smoke", "config": {"token": "hunter2-secret"}})
    (event,) = await _events(platform)
    assert event.arguments["config"] == {"token": "***"}


async def test_a_destructive_call_without_a_way_to_confirm_changes_nothing(platform: Platform, call: Call) -> None:
    await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    with pytest.raises(ConfirmationRequired, match="Delete workflow 'smoke'"):
        await dispatch(platform, call, "workflow.delete", {"name": "smoke"})
    assert await _count(platform, WorkflowRow) == 1
    event = (await _events(platform))[-1]
    assert (event.outcome, event.confirmation) == ("denied", "unavailable")


@pytest.mark.parametrize("outcome", ["declined", "cancelled"])
async def test_a_declined_or_cancelled_confirmation_deletes_nothing(
    platform: Platform, call: Call, outcome: ConfirmOutcome
) -> None:
    await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    call.confirm = _confirmer(outcome)
    with pytest.raises(ConfirmationRefused, match=f"user {outcome}"):
        await dispatch(platform, call, "workflow.delete", {"name": "smoke"})
    assert await _count(platform, WorkflowRow) == 1
    assert (await _events(platform))[-1].confirmation == outcome


async def test_an_accepted_bulk_delete_names_exactly_what_it_deletes(platform: Platform, call: Call) -> None:
    ids = [
        (await dispatch(platform, call, "testcase.create", {"name": f"case {i}"})).model_dump()["id"] for i in range(3)
    ]
    asked: list[str] = []
    call.confirm = _confirmer("accepted", asked)
    out = await dispatch(platform, call, "testcase.bulk_delete", {"ids": ids[:2]})
    assert out.model_dump() == {"deleted": True, "message": "deleted 2 test case(s)"}
    assert asked == ["Delete 2 test case(s) from 'dev': 'case 0', 'case 1'?"]
    assert await _count(platform, CaseRow) == 1
    event = (await _events(platform))[-1]
    assert event.confirmation == "accepted"
    assert sorted(r["name"] for r in event.resources) == ["case 0", "case 1"]


async def test_a_crash_inside_a_handler_is_audited_and_propagates(
    platform: Platform, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    op = reg.get("label.list")

    async def boom(ctx: Any, args: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setitem(reg._REGISTRY, "label.list", reg.Operation(**{**op.__dict__, "handler": boom}))
    with pytest.raises(RuntimeError):
        await dispatch(platform, call, "label.list", {})
    (event,) = await _events(platform)
    assert (event.outcome, event.reason) == ("error", "internal error (RuntimeError)")


async def test_if_the_audit_event_cannot_be_written_the_change_is_rolled_back(
    platform: Platform, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(session: Any, event: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(recorder, "record", broken)
    with pytest.raises(AuditFailure, match="nothing was changed"):
        await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    assert await _count(platform, WorkflowRow) == 0


async def test_the_chain_links_each_event_to_the_previous_one(platform: Platform, call: Call) -> None:
    for _ in range(3):
        await dispatch(platform, call, "label.list", {})
    events = await _events(platform)
    assert [e.seq for e in events] == [1, 2, 3]
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    import hashlib

    for e in events:
        assert hashlib.sha256(recorder.canonical(e)).hexdigest() == e.hash


async def test_queued_executions_are_aborted_in_the_store_when_no_executor_runs_them(
    platform: Platform, call: Call
) -> None:
    platform.executor = RecordingExecutor()
    await dispatch(platform, call, "workflow.create", {"definition": FLOW})
    run = await dispatch(platform, call, "workflow.run", {"name": "smoke", "config": {"token": "x"}})
    out = await dispatch(platform, call, "execution.abort", {"id": "smoke#1"})
    assert out.model_dump()["status"] == "aborted"
    async with platform.db.session() as session:
        row = await session.get(ExecutionRow, run.model_dump()["id"])
        assert row is not None
        assert row.status == "aborted"


async def test_concurrent_calls_all_succeed_and_keep_the_chain_dense(backend_platform: Platform) -> None:
    # SQLite needs BEGIN IMMEDIATE and PostgreSQL the organization's chain lock for this to hold.
    call = await _owner_call(backend_platform)
    results = await asyncio.gather(
        *(dispatch(backend_platform, call, "workflow.list", {}) for _ in range(40)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    events = await _events(backend_platform)
    assert [e.seq for e in events] == list(range(1, 41))
    assert all(after.prev_hash == before.hash for before, after in itertools.pairwise(events))


async def test_concurrent_creates_of_one_name_answer_as_one_after_another_would(backend_platform: Platform) -> None:
    """On PostgreSQL (read committed) concurrent creates of one name all pass the handler's existence check;
    every INSERT but the first violated the unique key and the calls failed with a raw IntegrityError (a 500,
    or JSON-RPC -32603). Run again, they answer as they would have one after another, as on SQLite."""
    call = await _owner_call(backend_platform)
    org_call = replace(call, environment=None)
    definition = FLOW.replace("{name: smoke}", "{name: {name}}")

    async def together(name: str, arguments: dict[str, Any], on: Call = call) -> list[str]:
        results = await asyncio.gather(
            *(dispatch(backend_platform, on, name, arguments) for _ in range(6)), return_exceptions=True
        )
        return sorted(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)

    created = await together("workflow.create", {"definition": definition.replace("{name}", "same")})
    applied = await together("workflow.apply", {"definition": definition.replace("{name}", "applied")})
    cases = await together("testcase.create", {"name": "Checkout works"})
    invited = await together("member.invite", {"email": "ada@example.com"}, on=org_call)
    environments = await together("environment.create", {"slug": "staging"}, on=org_call)

    assert created == ["Conflict"] * 5 + ["ok"]
    assert applied == ["ok"] * 6
    assert cases == ["Conflict"] * 5 + ["ok"]
    assert invited == ["Conflict"] * 5 + ["ok"]
    assert environments == ["Conflict"] * 5 + ["ok"]
    assert await _count(backend_platform, WorkflowRow) == 2
    assert await _count(backend_platform, CaseRow) == 1
    events = await _events(backend_platform)
    assert len(events) == 30  # one per call, none of a failed attempt
    assert sorted(e.outcome for e in events if e.action == "workflow.create") == ["allowed"] + ["error"] * 5
    assert [e.seq for e in events] == list(range(1, 31))


async def test_concurrent_tag_updates_of_one_execution_all_land(backend_platform: Platform) -> None:
    """On PostgreSQL a tag merge read the tags, deleted them and wrote the merge back with no lock: concurrent
    merges failed on the primary key (a 500) or silently dropped a merge whose 200 had said it was kept."""
    backend_platform.executor = RecordingExecutor()
    call = await _owner_call(backend_platform)
    await dispatch(backend_platform, call, "workflow.create", {"definition": FLOW})
    await dispatch(backend_platform, call, "workflow.run", {"name": "smoke", "config": {"token": "x"}})

    results = await asyncio.gather(
        *(
            dispatch(backend_platform, call, "execution.tags", {"id": "smoke#1", "tags": {f"t{i}": str(i)}})
            for i in range(30)
        ),
        return_exceptions=True,
    )

    assert [r for r in results if isinstance(r, BaseException)] == []
    got = await dispatch(backend_platform, call, "execution.get", {"id": "smoke#1"})
    assert got.model_dump()["tags"] == {f"t{i}": str(i) for i in range(30)}


@pytest.mark.parametrize(
    ("operation", "arguments", "path"),
    [
        ("execution.get", {"id": "smoke\x00#1"}, "id"),
        ("testcase.create", {"name": "Checkout", "labels": {"area\x00": "x"}}, "labels.area\\u0000"),
        ("execution.list", {"tags": {"k": "a\x00b"}}, "tags.k"),
        ("workflow.run", {"name": "smoke", "config": {"level": "\x00"}}, "config.level"),
        ("workflow.create", {"definition": FLOW.replace("echo one", '"echo \\0"')}, "spec.steps[0].shell"),
    ],
    ids=["id", "label-key", "tag-value", "config-value", "yaml-escape"],
)
async def test_text_holding_nul_is_invalid_input_naming_the_field(
    backend_platform: Platform, operation: str, arguments: dict[str, Any], path: str
) -> None:
    """PostgreSQL cannot store U+0000 in text: such an argument reached the INSERT or the WHERE clause and
    the call crashed (JSON-RPC -32603). It is refused where it enters, on both backends."""
    call = await _owner_call(backend_platform)
    await dispatch(backend_platform, call, "workflow.create", {"definition": FLOW})
    with pytest.raises(InvalidInput) as raised:
        await dispatch(backend_platform, call, operation, arguments)
    assert [(e.path, e.message) for e in raised.value.errors] == [(path, "must not contain the NUL character (U+0000)")]
    assert [e.outcome for e in await _events(backend_platform)][-1] == "error"


async def test_a_caller_that_goes_away_mid_call_neither_blocks_the_next_one_nor_loses_its_event(
    backend_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A client hanging up cancels the handler inside its transaction: the rollback must still run
    # (shielded), or SQLite's write lock stays held behind a dead connection.
    call = await _owner_call(backend_platform)
    entered = asyncio.Event()
    op = reg.get("label.list")

    async def stuck(ctx: Any, args: Any) -> Any:
        await ctx.db.execute(select(func.count()).select_from(WorkflowRow))
        entered.set()
        await asyncio.Event().wait()

    monkeypatch.setitem(reg._REGISTRY, "label.list", reg.Operation(**{**op.__dict__, "handler": stuck}))
    # anyio's cancellation (what the MCP SDK uses) is level-triggered: every unshielded await re-raises.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(dispatch, backend_platform, call, "label.list", {})
            await entered.wait()
            group.cancel_scope.cancel()
    with anyio.fail_after(5):
        await dispatch(backend_platform, call, "workflow.list", {})
    events = await _events(backend_platform)
    assert [(e.action, e.outcome, e.reason) for e in events] == [
        ("label.list", "error", "cancelled: the caller went away"),
        ("workflow.list", "allowed", ""),
    ]


@pytest.mark.postgres
async def test_on_postgresql_a_read_hands_its_event_to_an_entry_point_that_holds_its_answer(
    postgres_platform: Platform,
) -> None:
    # The entry point promises to hold the answer until the event is committed (``Call.hold``); on
    # PostgreSQL the commit is a round trip worth starting while the read's transaction ends.
    held: list[asyncio.Task[None]] = []

    def hold(event: asyncio.Task[None]) -> bool:
        held.append(event)
        return True

    call = replace(await _owner_call(postgres_platform), hold=hold)
    out = await dispatch(postgres_platform, call, "label.list", {})
    assert out.model_dump() == {"labels": {}}
    (event,) = held
    await event
    ((action, outcome),) = [(e.action, e.outcome) for e in await _events(postgres_platform)]
    assert (action, outcome) == ("label.list", "allowed")


async def test_on_an_sqlite_file_a_read_commits_its_event_before_dispatch_returns(
    platform: Platform, call: Call
) -> None:
    # There a lone event commits on the event loop itself: handing it over would overlap nothing.
    assert not platform.audit.inline_cheaper  # a SQLite file
    assert not platform.audit.early_commit
    offered: list[asyncio.Task[None]] = []
    await dispatch(platform, replace(call, hold=lambda event: offered.append(event) is None), "label.list", {})
    assert offered == []
    assert [e.outcome for e in await _events(platform)] == ["allowed"]


async def test_a_hold_that_cannot_hold_the_answer_any_more_leaves_dispatch_to_wait(
    platform: Platform, call: Call
) -> None:
    platform.audit.early_commit = True  # as on PostgreSQL
    offered: list[asyncio.Task[None]] = []

    def finished(event: asyncio.Task[None]) -> bool:
        offered.append(event)
        return False

    await dispatch(platform, replace(call, hold=finished), "label.list", {})
    assert [event.done() for event in offered] == [True]
    assert [e.outcome for e in await _events(platform)] == ["allowed"]


async def test_a_held_event_that_fails_is_the_calls_only_event_and_raises_audit_failure(
    platform: Platform, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[asyncio.Task[None]] = []
    platform.audit.early_commit = True  # as on PostgreSQL

    async def broken(event: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(platform.audit, "record", broken)
    await dispatch(platform, replace(call, hold=lambda event: held.append(event) is None), "label.list", {})
    (event,) = held
    with pytest.raises(AuditFailure, match="could not be written"):
        await event
    assert await _events(platform) == []
