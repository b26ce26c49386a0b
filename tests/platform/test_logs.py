"""Execution logs: the masked, bounded writer; tail, range, step and grep reads; the live follower."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import anyio
import pytest
from sqlalchemy import select, update

from testgate.errors import InvalidInput, NotFound
from testgate.platform import executions, logs, tenancy
from testgate.platform.context import Platform
from testgate.platform.logs import LogLine, LogWriter, follow, read_logs
from testgate.store.executions import ExecutionRow, LogLineRow

# 62 lines: seq 1 and 12 are system lines, "build i" is seq 1 + i, "test i" is seq 12 + i.
LOG = [
    (-1, "=== step 0: build ==="),
    *((0, f"build {i}") for i in range(1, 11)),
    (-1, "=== step 1: test ==="),
    *((1, f"test {i}{' ERROR disk full' if i in (5, 6, 40) else ''}") for i in range(1, 51)),
]


def bounded(platform: Platform, **limits: Any) -> Platform:
    runner = platform.settings.runner.model_copy(update=limits)
    return dataclasses.replace(platform, settings=platform.settings.model_copy(update={"runner": runner}))


@pytest.fixture
async def execution_id(platform: Platform) -> str:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
        row = await executions.create_external(session, env, name="ci", tags={}, created_by="test")
        return row.id


@pytest.fixture
async def logged(platform: Platform, execution_id: str) -> str:
    """An execution whose log holds LOG."""
    writer = LogWriter(platform, execution_id, masks=())
    for step, text in LOG:
        await writer.write(step, text)
    await writer.close()
    return execution_id


async def stored(platform: Platform, execution_id: str) -> list[str]:
    async with platform.db.session() as session:
        rows = await session.scalars(
            select(LogLineRow.text).where(LogLineRow.execution_id == execution_id).order_by(LogLineRow.seq)
        )
        return list(rows)


async def execution(platform: Platform, execution_id: str) -> ExecutionRow:
    async with platform.db.session() as session:
        row = await session.get(ExecutionRow, execution_id)
        assert row is not None
        return row


async def page(platform: Platform, execution_id: str, **options: Any) -> tuple[list[int], Any]:
    async with platform.db.session() as session:
        result = await read_logs(session, execution_id, **options)
    return [line.seq for line in result.lines], result


# Writer ------------------------------------------------------------------------------------------------


async def test_lines_get_dense_seqs_in_batches_and_the_execution_counts_them(
    platform: Platform, execution_id: str
) -> None:
    writer = LogWriter(platform, execution_id, masks=())
    for i in range(450):
        await writer.write(0, f"line {i}")
    await writer.close()

    async with platform.db.session() as session:
        seqs = list(await session.scalars(select(LogLineRow.seq).where(LogLineRow.execution_id == execution_id)))
    row = await execution(platform, execution_id)
    assert sorted(seqs) == list(range(1, 451))
    assert row.log_lines == 450
    assert row.log_bytes == sum(len(f"line {i}") for i in range(450))
    assert row.log_truncated is False


async def test_every_sensitive_value_is_masked_before_it_is_stored(platform: Platform, execution_id: str) -> None:
    writer = LogWriter(platform, execution_id, masks=["hunter2", "hunter2-long", "", "first-line\nsecond-line"])
    await writer.write(0, "pw=hunter2-long and hunter2 and hunter2")
    await writer.write(0, "second-line printed alone")
    await writer.close()

    assert await stored(platform, execution_id) == ["pw=*** and *** and ***", "*** printed alone"]


async def test_a_line_over_the_bound_is_cut_at_a_character_with_a_marker(platform: Platform, execution_id: str) -> None:
    writer = LogWriter(bounded(platform, max_log_line_bytes=256), execution_id, masks=())
    await writer.write(0, "é" * 300)  # 600 bytes
    await writer.write(0, "short", dropped_bytes=0)
    await writer.close()

    assert await stored(platform, execution_id) == ["é" * 128 + " … [line truncated: 600 bytes]", "short"]


async def test_a_secret_crossing_the_line_bound_is_masked_whole(platform: Platform, execution_id: str) -> None:
    writer = LogWriter(bounded(platform, max_log_line_bytes=256), execution_id, masks=["TOPSECRET"])
    # What a reader keeps of a long line: the bound plus the longest secret, the rest counted as dropped.
    line = "x" * 250 + "TOPSECRET"
    assert len(line) == writer.line_budget - 6
    await writer.write(0, line, dropped_bytes=1000)
    await writer.close()

    (text,) = await stored(platform, execution_id)
    assert "TOPSE" not in text
    assert text == "x" * 250 + "*** … [line truncated: 1253 bytes]"


async def test_the_total_bound_writes_one_final_line_and_drops_the_rest(platform: Platform, execution_id: str) -> None:
    writer = LogWriter(bounded(platform, max_log_bytes=4096), execution_id, masks=())
    for i in range(100):
        await writer.write(0, f"{i:03d}" + "y" * 97)
    await writer.close()

    texts = await stored(platform, execution_id)
    row = await execution(platform, execution_id)
    assert writer.truncated is True
    assert len(texts) == 41
    assert texts[-1] == "[log truncated: limit 4096 bytes reached]"
    assert row.log_truncated is True
    assert row.log_lines == 41


async def test_pending_lines_are_committed_soon_without_a_flush_and_wake_watchers(
    platform: Platform, execution_id: str
) -> None:
    writer = LogWriter(platform, execution_id, masks=())
    seen = platform.events.snapshot([execution_id])
    await writer.write(0, "hello")

    with anyio.fail_after(5):
        assert await platform.events.wait_any(seen, timeout=5) is True
    assert await stored(platform, execution_id) == ["hello"]
    await writer.close()


async def test_a_second_writer_continues_the_sequence(platform: Platform, execution_id: str) -> None:
    for text in ("one", "two"):
        writer = LogWriter(platform, execution_id, masks=())
        await writer.write(-1, text)
        await writer.close()

    seqs, result = await page(platform, execution_id)
    assert seqs == [1, 2]
    assert result.total_lines == 2


# Reader ------------------------------------------------------------------------------------------------


async def test_the_default_page_is_the_tail_and_says_where_to_continue(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, tail=5)

    assert seqs == [58, 59, 60, 61, 62]
    assert result.lines[-1] == LogLine(seq=62, step=1, time=result.lines[-1].time, text="test 50")
    assert (result.total_lines, result.next_seq, result.truncated, result.matches) == (62, 63, False, None)
    assert (await page(platform, logged))[0] == list(range(1, 63))


async def test_a_range_is_inclusive_and_ignores_tail(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, start=2, end=4, tail=1)

    assert seqs == [2, 3, 4]
    assert [line.text for line in result.lines] == ["build 1", "build 2", "build 3"]
    assert result.next_seq == 5
    assert (await page(platform, logged, start=60, end=1000))[1].next_seq == 63


async def test_the_step_filter_keeps_one_steps_lines(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, step=0, tail=None)

    assert seqs == list(range(2, 12))
    assert {line.step for line in result.lines} == {0}
    assert (await page(platform, logged, step=-1))[0] == [1, 12]


async def test_grep_returns_matches_with_context_lines(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, grep=r"ERROR\s+disk", context=1)

    # test 5 and 6 share their context; test 40 stands alone.
    assert seqs == [16, 17, 18, 19, 51, 52, 53]
    assert result.matches == 3
    assert result.truncated is False
    assert result.next_seq == 63


async def test_grep_stops_at_max_matches_and_says_where_to_continue(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, grep="ERROR", max_matches=2)

    assert seqs == [17, 18]
    assert (result.matches, result.truncated, result.next_seq) == (2, True, 52)
    rest, _ = await page(platform, logged, grep="ERROR", start=result.next_seq)
    assert rest == [52]


async def test_grep_scans_a_bounded_number_of_lines(
    platform: Platform, logged: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bound is what keeps a costly pattern from scanning a huge log.
    monkeypatch.setattr(logs, "MAX_SCAN_LINES", 10)
    seqs, result = await page(platform, logged, grep="never matches")

    assert seqs == []
    assert (result.matches, result.truncated, result.next_seq) == (0, True, 11)


async def test_an_invalid_regex_is_invalid_input(platform: Platform, logged: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid regular expression"):
        await page(platform, logged, grep="(unclosed")


@pytest.mark.parametrize(
    "options",
    [{"tail": -1}, {"start": 0}, {"context": 1000}, {"max_matches": 0}, {"max_bytes": 0}],
    ids=["tail", "start", "context", "max_matches", "max_bytes"],
)
async def test_out_of_range_options_are_invalid_input(platform: Platform, logged: str, options: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        await page(platform, logged, **options)


async def test_output_is_cut_at_max_bytes_and_continues_from_next_seq(platform: Platform, logged: str) -> None:
    # Each line counts its bytes plus a newline: "=== step 0: build ===" and "build 1" fill 30.
    seqs, result = await page(platform, logged, tail=None, max_bytes=30)

    assert seqs == [1, 2]
    assert (result.truncated, result.next_seq) == (True, 3)
    assert (await page(platform, logged, start=result.next_seq, end=3))[0] == [3]


async def test_a_tail_cut_at_max_bytes_keeps_the_newest_lines(platform: Platform, logged: str) -> None:
    seqs, result = await page(platform, logged, tail=10, max_bytes=17)

    assert seqs == [61, 62]
    assert result.truncated is True


async def test_reading_an_unknown_execution_is_not_found(platform: Platform) -> None:
    with pytest.raises(NotFound):
        await page(platform, "01unknown0000000000000000")


# Follower ----------------------------------------------------------------------------------------------


async def test_follow_yields_lines_as_committed_and_ends_when_the_execution_finished(
    platform: Platform, execution_id: str
) -> None:
    writer = LogWriter(platform, execution_id, masks=())
    await writer.write(0, "one")
    await writer.write(0, "two")
    await writer.flush()
    received: list[str] = []
    caught_up = asyncio.Event()

    async def watch() -> None:
        async for line in follow(platform, execution_id):
            received.append(line.text)
            if len(received) == 2:
                caught_up.set()

    with anyio.fail_after(10):
        watcher = asyncio.create_task(watch())
        await caught_up.wait()
        await writer.write(0, "three")
        await writer.close()
        async with platform.db.session() as session:
            await session.execute(update(ExecutionRow).where(ExecutionRow.id == execution_id).values(status="passed"))
        await platform.events.notify(execution_id)
        await watcher

    assert received == ["one", "two", "three"]


async def test_follow_starts_after_a_given_seq_and_ends_at_once_for_a_finished_execution(
    platform: Platform, logged: str
) -> None:
    async with platform.db.session() as session:
        await session.execute(update(ExecutionRow).where(ExecutionRow.id == logged).values(status="failed"))

    with anyio.fail_after(5):
        lines = [line.seq async for line in follow(platform, logged, after_seq=60)]

    assert lines == [61, 62]
