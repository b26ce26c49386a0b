"""``store.direct``: short write transactions run on the event loop when SQLite's write lock is free, in
the writer's own thread when another process holds it, and the loop never checkpoints; the WAL starts over
after each checkpoint instead of growing without end."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from testgate.store import direct
from testgate.store.db import _sqlite_pragmas
from testgate.store.direct import DirectWriter

HOLD_THE_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO t VALUES ('other process')")
print("holding", flush=True)
time.sleep(1.0)  # how long the lock is held; the writer waits on the lock, not on this
connection.execute("COMMIT")
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "direct.db"
    with sqlite3.connect(path) as connection:
        _sqlite_pragmas(connection)
        connection.execute("CREATE TABLE t (v TEXT)")
    return path


def _rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [v for (v,) in connection.execute("SELECT v FROM t ORDER BY rowid")]


def _insert(value: str, threads: list[str]) -> Callable[[sqlite3.Connection], str]:
    def work(connection: sqlite3.Connection) -> str:
        threads.append(threading.current_thread().name)
        connection.execute("INSERT INTO t VALUES (?)", (value,))
        return value

    return work


async def test_a_free_lock_is_written_on_the_loop_without_a_thread(database: Path) -> None:
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    threads: list[str] = []
    try:
        assert await writer.write(_insert("a", threads)) == "a"
        assert await writer.write(_insert("b", threads)) == "b"
    finally:
        await writer.close()
    assert threads == [threading.current_thread().name] * 2
    assert _rows(database) == ["a", "b"]


async def test_a_transaction_asked_not_to_run_now_runs_in_the_thread(database: Path) -> None:
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    threads: list[str] = []
    try:
        assert await writer.write(_insert("later", threads), now=False) == "later"
    finally:
        await writer.close()
    assert [name.startswith("testgate-sqlite-direct") for name in threads] == [True]
    assert _rows(database) == ["later"]


async def test_a_lock_held_by_another_process_is_waited_for_in_the_thread(database: Path) -> None:
    """BEGIN IMMEDIATE on the loop fails at once (busy timeout 0); the thread's connection waits in
    SQLite's busy handler until the other process commits, and the loop keeps running meanwhile."""
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_THE_LOCK, str(database), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"holding"
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    threads: list[str] = []
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(ticking())
    try:
        assert await writer.write(_insert("this process", threads)) == "this process"
    finally:
        ticker.cancel()
        await writer.close()
    assert await child.wait() == 0
    assert [name.startswith("testgate-sqlite-direct") for name in threads] == [True]
    assert ticks > 10  # the loop was not blocked while the lock was held
    assert _rows(database) == ["other process", "this process"]


async def test_work_that_fails_on_the_loop_is_rolled_back_and_raised(database: Path) -> None:
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)

    def failing(connection: sqlite3.Connection) -> None:
        connection.execute("INSERT INTO t VALUES ('half')")
        raise ValueError("the work failed")

    try:
        with pytest.raises(ValueError, match="the work failed"):
            await writer.write(failing)
        assert await writer.write(_insert("after", [])) == "after"
    finally:
        await writer.close()
    assert _rows(database) == ["after"]


async def _checkpoint_over(writer: DirectWriter) -> None:
    """Wait until neither phase of a checkpoint is under way."""
    while writer._copying is not None or writer._checkpoint is not None:
        await asyncio.wait({phase for phase in (writer._copying, writer._checkpoint) if phase is not None})
        await asyncio.sleep(0)  # the phase's done callback (which may start the next phase) runs


async def test_the_loop_never_checkpoints_and_the_threads_checkpoint(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct, "CHECKPOINT_EVERY", 3)
    phases: list[tuple[str, str]] = []
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    copy, restart = writer._copy_checkpoint, writer._restart_checkpoint

    def spying(phase: str, original: Callable[[], None]) -> Callable[[], None]:
        def spy() -> None:
            phases.append((phase, threading.current_thread().name))
            original()

        return spy

    monkeypatch.setattr(writer, "_copy_checkpoint", spying("copy", copy))
    monkeypatch.setattr(writer, "_restart_checkpoint", spying("restart", restart))
    try:
        for n in range(7):
            await writer.write(_insert(str(n), []))
            await _checkpoint_over(writer)  # one in flight is not started twice: let each finish
        assert writer._prompt is not None
        assert writer._prompt.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    finally:
        await writer.close()
    assert [phase for phase, _ in phases] == ["copy", "restart"] * 2
    assert all(thread.startswith("testgate-sqlite-checkpoint") for phase, thread in phases if phase == "copy")
    assert all(thread.startswith("testgate-sqlite-direct") for phase, thread in phases if phase == "restart")
    assert _rows(database) == [str(n) for n in range(7)]


async def test_the_loop_goes_on_writing_while_a_checkpoint_copies_and_waits_only_for_its_restart(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first phase (PASSIVE, on the copier's connection) runs beside the loop's writes; only the
    RESTART phase holds them, in the writer's thread."""
    monkeypatch.setattr(direct, "CHECKPOINT_EVERY", 2)
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    copying, copy_may_end = threading.Event(), threading.Event()
    restarting, restart_may_end = threading.Event(), threading.Event()

    def held(phase: Callable[[], None], began: threading.Event, may_end: threading.Event) -> Callable[[], None]:
        def holding() -> None:
            began.set()
            assert may_end.wait(30), "the test never let the phase end"
            phase()

        return holding

    monkeypatch.setattr(writer, "_copy_checkpoint", held(writer._copy_checkpoint, copying, copy_may_end))
    monkeypatch.setattr(writer, "_restart_checkpoint", held(writer._restart_checkpoint, restarting, restart_may_end))
    loop_thread = threading.current_thread().name
    threads: list[str] = []
    try:
        for n in range(2):
            await writer.write(_insert(f"before-{n}", threads))
        assert await asyncio.to_thread(copying.wait, 30)
        for n in range(3):  # the copy is still under way
            await writer.write(_insert(f"during-{n}", threads))
        assert threads == [loop_thread] * 5
        copy_may_end.set()
        assert await asyncio.to_thread(restarting.wait, 30)
        assert writer.now(_insert("not now", threads)) is direct.LATER
        held_write = asyncio.create_task(writer.write(_insert("held", threads)))
        await asyncio.sleep(0)
        assert not held_write.done()
        restart_may_end.set()
        await held_write
        await _checkpoint_over(writer)
        await writer.write(_insert("after", threads))
    finally:
        copy_may_end.set()
        restart_may_end.set()
        await writer.close()
    assert threads[-2].startswith("testgate-sqlite-direct")  # the held write waited in the writer's thread
    assert threads[-1] == loop_thread
    assert _rows(database) == ["before-0", "before-1", "during-0", "during-1", "during-2", "held", "after"]


async def test_writes_wait_out_a_checkpoint_in_the_thread_so_the_wal_starts_over(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite rewinds the WAL only when a write transaction begins with every frame copied back and no
    reader on the WAL (https://sqlite.org/wal.html#avoiding_excessively_large_wal_files). A checkpoint
    beside the loop's writes never gets there, and the WAL grew by every page written; writes held back
    behind a RESTART checkpoint keep it at a few checkpoint intervals of pages."""
    every = 20
    monkeypatch.setattr(direct, "CHECKPOINT_EVERY", every)
    writer = DirectWriter(database, _sqlite_pragmas, timeout=30)
    wal = database.with_name(database.name + "-wal")
    page = "x" * 6000  # two pages and an overflow page per row: the WAL grows visibly per transaction
    threads: list[str] = []
    written: list[str] = []
    reading = True

    async def writing(worker: int) -> None:
        for n in range(60):
            written.append(await writer.write(_insert(f"{worker}-{n}-{page}", threads)))
            await asyncio.sleep(0)

    async def readers() -> None:
        # Short read transactions all the while, as tool calls make them.
        with sqlite3.connect(database) as connection:
            while reading:
                connection.execute("SELECT count(*) FROM t").fetchone()
                await asyncio.sleep(0)

    reader = asyncio.create_task(readers())
    try:
        for n in range(every - 1):  # one interval's worth, before any checkpoint
            await writer.write(_insert(f"first-{n}-{page}", []))
        one_interval = wal.stat().st_size
        await asyncio.gather(*(writing(worker) for worker in range(4)))
        await _checkpoint_over(writer)
    finally:
        reading = False
        await reader
        await writer.close()
    assert sum(name.startswith("testgate-sqlite-direct") for name in threads) > 0  # queued behind checkpoints
    # 240 transactions after the first 19: without the rewind the WAL holds all ~13 intervals of them.
    # The loop's writes go on while a checkpoint copies, so the WAL also holds what they add meanwhile (here,
    # writers as fast as they can go: two or three intervals in all; in a server, a few dozen events of 1,000).
    # On a loaded machine a copy takes longer and more is written meanwhile (6.7 intervals measured in CI with
    # other jobs running); 8 still tells a WAL that starts over from one that never does (13 and more).
    assert wal.stat().st_size <= 8 * one_interval
    assert sorted(written) == sorted(f"{w}-{n}-{page}" for w in range(4) for n in range(60))
    assert len(_rows(database)) == every - 1 + 240
