"""Per-test results: stored from a workspace or an upload, paged, and read back as history."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from testgate.config import RunnerSettings
from testgate.errors import InvalidInput, LimitExceeded, NotFound
from testgate.platform import executions, results, tenancy, workflows
from testgate.platform.context import Platform
from testgate.platform.junit import ParsedResult, parse_junit
from testgate.store.executions import ExecutionRow, ResultRow
from testgate.store.tenancy import Environment

WORKFLOW = """
kind: TestWorkflow
metadata: {name: unit}
spec:
  steps: [{name: test, shell: "true"}]
  results: {junit: ["reports/**/*.xml"]}
"""


def report(*cases: str, suite: str = "s") -> bytes:
    return f'<testsuite name="{suite}">{"".join(cases)}</testsuite>'.encode()


PASS = '<testcase classname="c" name="{}" time="1.5"/>'
FAIL = '<testcase classname="c" name="{}" time="0.5"><failure message="boom">trace</failure></testcase>'
ERROR = '<testcase classname="c" name="{}"><error type="E"/></testcase>'
SKIP = '<testcase classname="c" name="{}"><skipped/></testcase>'


async def environment(platform: Platform) -> Environment:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        return await tenancy.environment_by_slug(session, org, "dev")


async def new_execution(platform: Platform) -> ExecutionRow:
    env = await environment(platform)
    async with platform.db.session() as session:
        saved = await workflows.save(session, env, WORKFLOW, max_bytes=65536, mode="apply")
        created = await executions.create(session, env, saved.row, config={}, tags={}, created_by="test")
        return created.row


async def stored(platform: Platform, execution_id: str) -> tuple[ExecutionRow, list[ResultRow]]:
    async with platform.db.session() as session:
        row = await session.get(ExecutionRow, execution_id)
        assert row is not None
        rows = await session.scalars(select(ResultRow).where(ResultRow.execution_id == execution_id))
        return row, list(rows)


async def test_storing_results_inserts_rows_and_adds_to_the_counters(platform: Platform) -> None:
    execution = await new_execution(platform)
    parsed = parse_junit(report(PASS.format("a"), FAIL.format("b"), ERROR.format("c"), SKIP.format("d")))
    for _ in range(2):
        async with platform.db.session() as session:
            row = await session.get(ExecutionRow, execution.id)
            assert row is not None
            await results.store_results(session, row, parsed)
    row, rows = await stored(platform, execution.id)
    counters = (row.tests_total, row.tests_passed, row.tests_failed, row.tests_errored, row.tests_skipped)
    assert counters == (8, 2, 2, 2, 2)
    assert len(rows) == 8
    assert {r.environment_id for r in rows} == {execution.environment_id}
    assert {(r.name, r.status) for r in rows} == {("a", "passed"), ("b", "failed"), ("c", "errored"), ("d", "skipped")}


def workspace_with_reports(tmp_path: Path) -> tuple[Path, Path]:
    workspace, outside = tmp_path / "ws", tmp_path / "outside"
    (workspace / "reports" / "sub").mkdir(parents=True)
    outside.mkdir()
    (workspace / "reports" / "a.xml").write_bytes(report(PASS.format("a1"), FAIL.format("a2")))
    (workspace / "reports" / "sub" / "b.xml").write_bytes(report(PASS.format("b1")))
    (workspace / "reports" / "broken.xml").write_bytes(b"<testsuite><testcase>")
    (workspace / "reports" / "xxe.xml").write_bytes(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
    (outside / "stolen.xml").write_bytes(report(PASS.format("outside")))
    return workspace, outside


async def test_ingesting_a_workspace_stores_good_reports_and_reports_bad_ones(
    platform: Platform, tmp_path: Path
) -> None:
    execution = await new_execution(platform)
    workspace, _ = workspace_with_reports(tmp_path)
    got = await results.ingest_workspace(platform, execution.id, workspace, ["reports/**/*.xml"])
    assert got.files == ["reports/a.xml", "reports/sub/b.xml"]
    assert got.tests == 3
    assert any(p.startswith("reports/broken.xml: the JUnit file is not well-formed XML") for p in got.problems)
    assert "reports/xxe.xml: the JUnit file uses a DTD/entities, which are refused" in got.problems
    row, rows = await stored(platform, execution.id)
    assert (row.tests_total, row.tests_passed, row.tests_failed) == (3, 2, 1)
    assert sorted(r.name for r in rows) == ["a1", "a2", "b1"]


async def test_ingesting_never_follows_a_symlink_out_of_the_workspace(platform: Platform, tmp_path: Path) -> None:
    # CWE-59: a report linked (file or directory) from outside the workspace is refused, not read.
    execution = await new_execution(platform)
    workspace, outside = workspace_with_reports(tmp_path)
    os.symlink(outside / "stolen.xml", workspace / "reports" / "link.xml")
    os.symlink(outside, workspace / "reports" / "linked-dir")
    os.symlink(outside, workspace / "out")
    got = await results.ingest_workspace(platform, execution.id, workspace, ["reports/**/*.xml", "out/*.xml"])
    assert "reports/link.xml: a symlink that resolves outside the workspace; refused" in got.problems
    assert got.files == ["reports/a.xml", "reports/sub/b.xml"]  # linked-dir/stolen.xml was not walked into
    assert "out: resolves outside the workspace; refused" in got.problems
    _, rows = await stored(platform, execution.id)
    assert "outside" not in {r.name for r in rows}


async def test_a_pattern_climbing_out_of_the_workspace_is_refused(platform: Platform, tmp_path: Path) -> None:
    # CWE-22 path traversal: '..' and absolute patterns never leave the workspace.
    execution = await new_execution(platform)
    workspace, _ = workspace_with_reports(tmp_path)
    got = await results.ingest_workspace(platform, execution.id, workspace, ["../outside/*.xml", "/etc/*"])
    assert got.files == []
    assert "'../outside/*.xml': a pattern must not contain '..'" in got.problems
    assert "'/etc/*': a pattern must be a relative path" in got.problems


async def test_a_report_over_the_junit_limit_is_skipped(platform: Platform, tmp_path: Path) -> None:
    platform = dataclasses.replace(
        platform,
        settings=platform.settings.model_copy(update={"runner": RunnerSettings(max_junit_bytes=1024)}),
    )
    execution = await new_execution(platform)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "big.xml").write_bytes(report(*(PASS.format(f"t{i}") for i in range(100))))
    (workspace / "small.xml").write_bytes(report(PASS.format("t")))
    got = await results.ingest_workspace(platform, execution.id, workspace, ["*.xml"])
    assert got.files == ["small.xml"]
    assert got.problems == ["big.xml: larger than the JUnit limit of 1024 bytes; skipped"]


async def test_no_matching_report_is_reported(platform: Platform, tmp_path: Path) -> None:
    execution = await new_execution(platform)
    got = await results.ingest_workspace(platform, execution.id, tmp_path, ["reports/*.xml"])
    assert got.problems == ["no JUnit file matched reports/*.xml"]


async def test_ingesting_for_an_unknown_execution_fails(platform: Platform, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        await results.ingest_workspace(platform, "nope", tmp_path, ["*.xml"])


async def upload(platform: Platform, files: list[tuple[str, bytes]], max_file_bytes: int | None = None) -> ExecutionRow:
    env = await environment(platform)
    async with platform.db.session() as session:
        return await results.upload(
            session,
            env,
            name="external-ci",
            files=files,
            tags={"ci": "gha"},
            created_by="ci-bot",
            max_file_bytes=max_file_bytes,
        )


async def test_an_upload_with_only_passing_tests_is_a_passed_execution(platform: Platform) -> None:
    row = await upload(
        platform, [("a.xml", report(PASS.format("a"), SKIP.format("s"))), ("b.xml", report(PASS.format("b")))]
    )
    assert (row.status, row.source, row.workflow_name, row.number) == ("passed", "upload", "external-ci", 1)
    assert (row.tests_total, row.tests_passed, row.tests_skipped) == (3, 2, 1)
    assert row.finished_at is not None
    assert row.duration_ms == 3000
    async with platform.db.session() as session:
        assert (await executions.tags_of(session, [row.id]))[row.id] == {"ci": "gha"}


async def test_an_upload_with_a_failed_or_errored_test_is_a_failed_execution(platform: Platform) -> None:
    first = await upload(platform, [("a.xml", report(PASS.format("a"), FAIL.format("b")))])
    second = await upload(platform, [("a.xml", report(ERROR.format("c")))])
    assert (first.status, first.tests_failed, first.duration_ms) == ("failed", 1, 2000)
    assert (second.status, second.tests_errored, second.number) == ("failed", 1, 2)
    assert first.reason == "1 test(s) failed or errored"


async def test_an_upload_with_one_invalid_file_stores_nothing(platform: Platform) -> None:
    files = [("good.xml", report(PASS.format("a"))), ("bad.xml", b"<testsuite>")]
    with pytest.raises(InvalidInput, match=r"bad\.xml: the JUnit file is not well-formed XML"):
        await upload(platform, files)
    async with platform.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(ExecutionRow)) == 0
        assert await session.scalar(select(func.count()).select_from(ResultRow)) == 0


async def test_an_upload_with_an_xxe_file_is_refused(platform: Platform) -> None:
    # CWE-611 XXE: an uploaded report with entities is refused as a whole.
    xxe = b'<!DOCTYPE t [<!ENTITY x SYSTEM "file:///etc/passwd">]><testsuite name="&x;"/>'
    with pytest.raises(InvalidInput, match=r"x\.xml: the JUnit file uses a DTD/entities"):
        await upload(platform, [("x.xml", xxe)])


async def test_an_upload_file_over_the_limit_is_refused(platform: Platform) -> None:
    with pytest.raises(LimitExceeded, match=r"big\.xml: the JUnit file is"):
        await upload(platform, [("big.xml", report(PASS.format("a")) + b" " * 2048)], max_file_bytes=1024)


async def test_an_upload_needs_files_and_a_slug_name(platform: Platform) -> None:
    env = await environment(platform)
    async with platform.db.session() as session:
        with pytest.raises(InvalidInput, match="at least one"):
            await results.upload(session, env, name="ci", files=[], tags={}, created_by="x")
        with pytest.raises(InvalidInput, match="lowercase"):
            await results.upload(session, env, name="Not A Slug", files=[("a", b"")], tags={}, created_by="x")


async def test_results_are_paged_in_order_with_whole_execution_counts(platform: Platform) -> None:
    cases = [PASS.format(f"p{i}") for i in range(5)] + [FAIL.format("f1"), SKIP.format("s1")]
    row = await upload(platform, [("r.xml", report(*cases))])
    names: list[str] = []
    cursor = None
    async with platform.db.session() as session:
        for _ in range(3):
            page = await results.list_results(session, row.id, limit=3, cursor=cursor)
            assert (page.total, page.passed, page.failed, page.skipped, page.errored) == (7, 5, 1, 1, 0)
            names += [r.name for r in page.results]
            cursor = page.next_cursor
        assert cursor is None
    assert names == ["p0", "p1", "p2", "p3", "p4", "f1", "s1"]


async def test_results_filter_by_status_and_cut_or_omit_traces(platform: Platform) -> None:
    long_fail = '<testcase classname="c" name="long"><failure message="m">' + "x" * 5000 + "</failure></testcase>"
    row = await upload(platform, [("r.xml", report(PASS.format("a"), long_fail, ERROR.format("e")))])
    async with platform.db.session() as session:
        page = await results.list_results(session, row.id, status=["failed", "errored"], max_trace_chars=200)
        assert [(r.name, r.status) for r in page.results] == [("long", "failed"), ("e", "errored")]
        assert len(page.results[0].trace) <= 200
        assert page.results[0].trace.endswith("more characters cut]")
        bare = await results.list_results(session, row.id, status=["failed"], include_trace=False)
        assert bare.results[0].trace == ""
        assert bare.results[0].message == "m"


async def test_results_refuse_an_unknown_status_or_a_forged_cursor(platform: Platform) -> None:
    row = await upload(platform, [("r.xml", report(PASS.format("a")))])
    async with platform.db.session() as session:
        with pytest.raises(InvalidInput, match="unknown status"):
            await results.list_results(session, row.id, status=["broken"])
        for cursor in ("not-a-cursor", "WyJ4Il0"):  # garbage, and a valid cursor holding a string
            with pytest.raises(InvalidInput, match="cursor"):
                await results.list_results(session, row.id, cursor=cursor)


async def test_history_gives_each_tests_statuses_oldest_first(platform: Platform) -> None:
    for cases in ([PASS.format("x"), PASS.format("y")], [FAIL.format("x")], [PASS.format("x"), SKIP.format("y")]):
        await upload(platform, [("r.xml", report(*cases))])
    await new_execution(platform)  # queued, so outside the window of finished executions
    env = await environment(platform)
    async with platform.db.session() as session:
        everything = await results.history(session, env.id, workflow_name="external-ci", last=10)
        recent = await results.history(session, env.id, workflow_name="external-ci", last=2)
        other = await results.history(session, env.id, workflow_name="unit", last=10)
        anywhere = await results.history(session, env.id, workflow_name=None, last=10)
    assert everything == {("c", "x"): ["passed", "failed", "passed"], ("c", "y"): ["passed", "skipped"]}
    assert recent == {("c", "x"): ["failed", "passed"], ("c", "y"): ["skipped"]}
    assert other == {}
    assert anywhere == everything


def test_parsed_results_are_frozen() -> None:
    result = ParsedResult("s", "c", "n", "passed", 0, "", "", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.name = "other"  # type: ignore[misc]
