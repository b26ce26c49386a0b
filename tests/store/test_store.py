"""The store on both backends: migrations, time zones, numbering, keyset pages, tags, cascades."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from testgate.errors import InvalidInput
from testgate.platform import executions, tenancy, workflows
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.executions import ExecutionRow, ExecutionTagRow, StepRow
from testgate.store.migrate import current_revision, head_revision, upgrade
from testgate.store.tenancy import User
from testgate.store.workflows import WorkflowRow

FLOW = """
kind: TestWorkflow
metadata: {name: %s, labels: {team: qa}}
spec:
  config:
    token: {type: string, sensitive: true}
  steps:
    - name: one
      shell: echo one
    - name: two
      shell: echo two
"""


async def _workflow(platform: Platform, name: str = "smoke") -> WorkflowRow:
    async with platform.db.session() as session:
        env = await _env(session)
        saved = await workflows.save(session, env, FLOW % name, max_bytes=100_000)
        return saved.row


async def _env(session):  # type: ignore[no-untyped-def]
    org = await tenancy.organization_by_slug(session, "acme")
    return await tenancy.environment_by_slug(session, org, "dev")


async def _run(platform: Platform, row: WorkflowRow, tags: dict[str, str] | None = None) -> ExecutionRow:
    async with platform.db.session() as session:
        env = await _env(session)
        created = await executions.create(session, env, row, config={"token": "x"}, tags=tags or {}, created_by="t")
        return created.row


async def test_migrations_reach_head_and_are_idempotent(backend_platform: Platform) -> None:
    engine = backend_platform.db.engine
    assert await current_revision(engine) == head_revision()
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()


async def test_times_come_back_timezone_aware_in_utc(backend_platform: Platform) -> None:
    row = await _workflow(backend_platform)
    async with backend_platform.db.session() as session:
        loaded = await session.get(WorkflowRow, row.id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_an_execution_is_created_queued_with_its_steps_and_without_the_secret(
    backend_platform: Platform,
) -> None:
    row = await _workflow(backend_platform)
    async with backend_platform.db.session() as session:
        env = await _env(session)
        created = await executions.create(
            session, env, row, config={"token": "s3cr3t-value"}, tags={"branch": "main"}, created_by="t"
        )
    assert created.secrets == {"token": "s3cr3t-value"}
    async with backend_platform.db.session() as session:
        stored = await session.get(ExecutionRow, created.row.id)
        assert stored is not None
        assert (stored.status, stored.number, stored.config) == ("queued", 1, {"token": "***"})
        steps = await executions.steps_of(session, stored.id)
        assert [(s.index, s.name, s.status) for s in steps] == [(0, "one", "queued"), (1, "two", "queued")]
        assert "s3cr3t-value" not in repr([stored.config, stored.spec])


async def test_concurrent_runs_get_distinct_consecutive_numbers(backend_platform: Platform) -> None:
    row = await _workflow(backend_platform)
    created = await asyncio.gather(*(_run(backend_platform, row) for _ in range(8)))
    assert sorted(c.number for c in created) == list(range(1, 9))


async def _upload(platform: Platform, name: str) -> ExecutionRow:
    async with platform.db.session() as session:
        return await executions.create_external(session, await _env(session), name=name, tags={}, created_by="t")


async def _get(platform: Platform, ref: str) -> ExecutionRow:
    async with platform.db.session() as session:
        return await executions.get(session, await _env(session), ref)


async def test_a_workflow_created_again_numbers_on_from_the_deleted_ones_executions(backend_platform: Platform) -> None:
    """``smoke#1`` must name one execution: the first run of a recreated ``smoke`` was numbered 1 again."""
    first = await _run(backend_platform, await _workflow(backend_platform))
    async with backend_platform.db.session() as session:
        loaded = await session.get(WorkflowRow, first.workflow_id)
        assert loaded is not None
        await workflows.delete_workflow(session, loaded, with_executions=False)
    again = await _run(backend_platform, await _workflow(backend_platform))
    uploaded = await _upload(backend_platform, "nightly")
    nightly = await _run(backend_platform, await _workflow(backend_platform, "nightly"))

    assert (first.number, again.number) == (1, 2)
    assert ((await _get(backend_platform, "smoke#1")).id, (await _get(backend_platform, "smoke#2")).id) == (
        first.id,
        again.id,
    )
    assert (uploaded.number, nightly.number) == (1, 2)


async def test_concurrent_uploads_under_one_name_get_distinct_numbers(backend_platform: Platform) -> None:
    # No workflow row to lock: on PostgreSQL the name's numbering lock keeps two uploads from both taking 1.
    created = await asyncio.gather(*(_upload(backend_platform, "external") for _ in range(8)))
    assert sorted(c.number for c in created) == list(range(1, 9))


async def test_the_migration_brings_a_recreated_workflows_count_up_to_its_executions(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await upgrade(engine, "e5a9c3d17b42")
    db = Database(engine)
    try:
        async with db.session() as session:
            await tenancy.bootstrap(session, "acme", "dev")
            env = await _env(session)
            # What a deleted workflow left: its executions, kept, and a workflow of its name created again
            # that counted from 0 (one run so far).
            for number in (1, 2, 3):
                session.add(ExecutionRow(environment_id=env.id, workflow_id=None, workflow_name="smoke", number=number))
            session.add(WorkflowRow(environment_id=env.id, name="smoke", spec={}, definition="", execution_count=1))
            session.add(WorkflowRow(environment_id=env.id, name="fresh", spec={}, definition="", execution_count=0))
        await upgrade(engine)
        async with db.session() as session:
            counts = dict((await session.execute(select(WorkflowRow.name, WorkflowRow.execution_count))).all())
    finally:
        await db.dispose()
    assert counts == {"smoke": 3, "fresh": 0}


async def test_keyset_pages_walk_every_execution_once_newest_first(backend_platform: Platform) -> None:
    row = await _workflow(backend_platform)
    made = [await _run(backend_platform, row) for _ in range(7)]
    seen: list[str] = []
    cursor = None
    async with backend_platform.db.session() as session:
        env = await _env(session)
        while True:
            page = await executions.list_page(session, env, limit=3, cursor=cursor)
            seen += [r.id for r in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == [m.id for m in reversed(made)]


async def test_filters_narrow_by_workflow_status_tags_and_time(backend_platform: Platform) -> None:
    smoke, nightly = await _workflow(backend_platform, "smoke"), await _workflow(backend_platform, "nightly")
    a = await _run(backend_platform, smoke, {"branch": "main", "nightly": "yes"})
    await _run(backend_platform, smoke, {"branch": "dev"})
    c = await _run(backend_platform, nightly, {"branch": "main"})
    async with backend_platform.db.session() as session:
        env = await _env(session)

        async def ids(**kw: object) -> list[str]:
            return [r.id for r in (await executions.list_page(session, env, **kw)).rows]  # type: ignore[arg-type]

        assert await ids(workflow="nightly") == [c.id]
        assert await ids(tags="branch=main") == [c.id, a.id]
        assert await ids(tags="branch=main,nightly") == [a.id]
        assert await ids(status=["queued"], workflow="smoke", tags="nightly") == [a.id]
        assert await ids(since=datetime.now(UTC) + timedelta(hours=1)) == []
        assert await ids(text="night") == [c.id]
        with pytest.raises(InvalidInput):
            await ids(status=["exploded"])
        with pytest.raises(InvalidInput):
            await ids(cursor="not-a-cursor!!")


async def test_tags_merge_remove_and_replace(backend_platform: Platform) -> None:
    row = await _run(backend_platform, await _workflow(backend_platform), {"a": "1", "b": "2"})
    async with backend_platform.db.session() as session:
        assert await executions.set_tags(session, row, {"b": None, "c": "3"}, replace=False) == {"a": "1", "c": "3"}
        assert await executions.set_tags(session, row, {"z": "9"}, replace=True) == {"z": "9"}
        with pytest.raises(InvalidInput):
            await executions.set_tags(session, row, {"bad key!": "x"}, replace=False)


async def test_deleting_a_workflow_with_its_executions_cascades_to_steps_and_tags(
    backend_platform: Platform,
) -> None:
    row = await _workflow(backend_platform)
    await _run(backend_platform, row, {"k": "v"})
    async with backend_platform.db.session() as session:
        loaded = await session.get(WorkflowRow, row.id)
        assert loaded is not None
        assert await workflows.delete_workflow(session, loaded, with_executions=True) == 1
    async with backend_platform.db.session() as session:
        for model in (ExecutionRow, StepRow, ExecutionTagRow):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_listing_executions_is_an_index_seek_not_a_scan(platform: Platform) -> None:
    # The "fast at a million executions" property: the page query must use the keyset index.
    row = await _workflow(platform)
    await _run(platform, row)
    async with platform.db.session() as session:
        env = await _env(session)
        page = await executions.list_page(session, env, limit=1)
        cursor = executions.encode_cursor(executions.CURSOR, page.rows[0].id) if page.rows else None
        plan = await session.execute(
            text(
                "EXPLAIN QUERY PLAN SELECT * FROM executions WHERE environment_id = :e AND id < :c "
                "ORDER BY id DESC LIMIT 51"
            ),
            {"e": env.id, "c": cursor or "z"},
        )
        detail = " ".join(str(r[-1]) for r in plan)
    assert "ix_executions_env_id" in detail
    assert "TEMP B-TREE" not in detail


@pytest.mark.postgres
async def test_two_replicas_starting_together_on_an_empty_postgres_both_come_up(tmp_path: Path) -> None:
    from tests.conftest import _drop_postgres_database, _postgres_database

    from testgate.config import Settings
    from testgate.runtime import bootstrap_default, open_platform

    url = await _postgres_database()
    try:

        async def replica(name: str) -> str:
            settings = Settings(data_dir=tmp_path / name, database_url=url)
            async with open_platform(settings, executor=False) as live:
                boot = await bootstrap_default(live, issue_setup_token=True)
                return boot.organization.id

        # Without the startup lock the two migrations deadlock on DDL or race on the default organization.
        with anyio.fail_after(60):
            first, second = await asyncio.gather(replica("a"), replica("b"))
        assert first == second
    finally:
        await _drop_postgres_database(url)


async def test_a_database_errors_message_holds_no_statement_parameters(backend_platform: Platform) -> None:
    # The message reaches the log; a user's row carries their password hash (OWASP ASVS 4.0.3 V7.1.1).
    secret = "$argon2id$v=19$m=65536,t=3,p=4$not-in-any-log"

    async def insert_twice() -> None:
        async with backend_platform.db.session() as session:
            session.add(User(email="dup@example.com", password_hash=secret))
            session.add(User(email="dup@example.com", password_hash=secret))

    with pytest.raises(IntegrityError) as raised:
        await insert_twice()
    assert "dup@example.com" not in str(raised.value)
    assert secret not in str(raised.value)
    assert "parameters hidden" in str(raised.value)


def test_ids_are_ulids_in_crockford_base32() -> None:
    """``ulid`` spells each 5-bit group, most significant first, in Crockford's lowercase alphabet."""
    from testgate.ids import new_id, ulid

    def by_hand(value: int) -> str:
        digits = []
        for _ in range(26):
            value, rem = divmod(value, 32)
            digits.append("0123456789abcdefghjkmnpqrstvwxyz"[rem])
        return "".join(reversed(digits))

    for value in (
        0,
        1,
        31,
        32,
        2**80 - 1,
        2**128 - 1,
        0x0123456789ABCDEF0123456789ABCDEF,
        *range(1000, 1_000_000, 9973),
    ):
        assert ulid(value) == by_hand(value)
    earlier = new_id()
    time.sleep(0.002)
    later = new_id()
    assert len(earlier) == 26
    assert earlier < later  # time-sortable: the milliseconds come first


async def test_an_upload_racing_the_creation_of_its_workflow_still_gets_a_number_of_its_own(
    backend_platform: Platform,
) -> None:
    """The upload looked its workflow up before it waited for the name's lock: it saw none, numbered from
    the executions alone, and the new workflow's first run took the same number."""
    async with backend_platform.db.session() as creating:
        env = await _env(creating)
        await workflows.save(creating, env, FLOW % "w", max_bytes=100_000)  # holds the name until it commits
        upload = asyncio.create_task(_upload(backend_platform, "w"))
        await asyncio.sleep(0.3)  # the upload is waiting for the name (or, on SQLite, for the write lock)
        assert not upload.done()
    uploaded = await upload
    async with backend_platform.db.session() as session:
        row = await session.scalar(select(WorkflowRow).where(WorkflowRow.name == "w"))
        assert row is not None
    ran = await _run(backend_platform, row)

    assert (uploaded.number, ran.number) == (1, 2)
