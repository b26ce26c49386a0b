"""One child process in its own process group: merged output read line by line, group termination.

The child gets a new session (``start_new_session``), so its process id is its group id and a timeout
or abort can signal every process it started, grandchildren included: SIGTERM, then SIGKILL after the
grace period.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from testgate.errors import RunnerError

READ_CHUNK = 64 * 1024
POLL_SECONDS = 0.02
# After the main process ended, output still held open by an escaped descendant is read this long.
DRAIN_SECONDS = 2.0
# How long SIGKILLed processes may take to be reaped before we stop waiting for them.
REAP_SECONDS = 5.0

LineSink = Callable[[str, int], Awaitable[None]]
"""Receives each line of output (without its newline) and how many of its bytes were dropped."""


@dataclass(frozen=True)
class Outcome:
    kind: Literal["exited", "timed_out", "aborted"]
    exit_code: int | None


class LineSplitter:
    """Splits a byte stream into lines, keeping at most ``keep`` bytes of each (the rest is counted)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._buffer = bytearray()
        self._dropped = 0

    def feed(self, chunk: bytes) -> list[tuple[str, int]]:
        lines: list[tuple[str, int]] = []
        start = 0
        while (newline := chunk.find(b"\n", start)) >= 0:
            self._add(chunk[start:newline])
            lines.append(self._take())
            start = newline + 1
        self._add(chunk[start:])
        return lines

    def finish(self) -> tuple[str, int] | None:
        """The final line when the output did not end with a newline."""
        return self._take() if self._buffer or self._dropped else None

    def _add(self, piece: bytes) -> None:
        room = max(0, self._keep - len(self._buffer))
        self._buffer += piece[:room]
        self._dropped += max(0, len(piece) - room)

    def _take(self) -> tuple[str, int]:
        data = bytes(self._buffer)
        if not self._dropped:
            data = data.removesuffix(b"\r")
        line = (data.decode(errors="replace"), self._dropped)
        self._buffer.clear()
        self._dropped = 0
        return line


async def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    abort: asyncio.Event,
    sink: LineSink,
    line_bytes: int,
    grace: float,
) -> Outcome:
    """Run ``argv`` to completion, timeout or abort; the whole group is gone when this returns."""
    read_fd, write_fd = os.pipe()
    try:
        transport, reader = await _open_reader(read_fd)  # owns read_fd from here on
    except BaseException:
        os.close(write_fd)
        raise
    try:
        process = await _spawn(argv, cwd, env, write_fd)
    except BaseException:
        transport.close()
        raise
    return await _supervise(process, transport, reader, timeout, abort, sink, line_bytes, grace)


async def _spawn(argv: list[str], cwd: Path, env: Mapping[str, str], write_fd: int) -> asyncio.subprocess.Process:
    """Start ``argv`` in a new session, stdout and stderr both on ``write_fd`` (closed here either way)."""
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise RunnerError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    finally:
        os.close(write_fd)  # the child holds its own copy; ours would keep the pipe from ending


async def _supervise(
    process: asyncio.subprocess.Process,
    transport: asyncio.ReadTransport,
    reader: asyncio.StreamReader,
    timeout: float,
    abort: asyncio.Event,
    sink: LineSink,
    line_bytes: int,
    grace: float,
) -> Outcome:
    pump = asyncio.create_task(_pump(reader, sink, LineSplitter(line_bytes)))
    exited = asyncio.create_task(process.wait())
    aborted = asyncio.create_task(abort.wait())
    try:
        kind = await _first_event(exited, aborted, pump, timeout)
    finally:
        aborted.cancel()
        await terminate_group(process.pid, grace)
        await _drain(pump, transport)
        await exited
    return Outcome(kind, process.returncode if kind == "exited" else None)


async def _open_reader(read_fd: int) -> tuple[asyncio.ReadTransport, asyncio.StreamReader]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    except BaseException:
        pipe.close()
        raise
    return transport, reader


async def _pump(reader: asyncio.StreamReader, sink: LineSink, splitter: LineSplitter) -> None:
    while chunk := await reader.read(READ_CHUNK):
        for text, dropped in splitter.feed(chunk):
            await sink(text, dropped)
    last = splitter.finish()
    if last is not None:
        await sink(*last)


async def _first_event(
    exited: asyncio.Task[int], aborted: asyncio.Task[Literal[True]], pump: asyncio.Task[None], timeout: float
) -> Literal["exited", "timed_out", "aborted"]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    waiting: set[asyncio.Task[Any]] = {exited, aborted, pump}
    while True:
        done, _ = await asyncio.wait(
            waiting, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
        )
        if exited in done:
            return "exited"
        if aborted in done:
            return "aborted"
        if not done:
            return "timed_out"
        if pump.exception() is not None:
            return "aborted"  # the sink failed: stop the process; _drain re-raises the error
        waiting.discard(pump)  # the output ended before the process did


async def _drain(pump: asyncio.Task[None], transport: asyncio.ReadTransport) -> None:
    """Read what is left; a descendant that escaped the group may hold the pipe, so stop after a bound."""
    done, _ = await asyncio.wait({pump}, timeout=DRAIN_SECONDS)
    if not done:
        transport.close()  # the reader then sees end of file
    try:
        await pump
    finally:
        transport.close()


def _signal_group(pgid: int, signum: signal.Signals) -> bool:
    """Send ``signum`` to the group; False when no process of it exists any more."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def group_exists(pgid: int) -> bool:
    """Whether any process (a zombie not yet reaped included) is still in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_running(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies are dead, only not reaped yet)."""
    if not group_exists(pgid):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    return any(e.name.isdigit() and _running_member(e / "stat", pgid) for e in proc.iterdir())


def _running_member(stat: Path, pgid: int) -> bool:
    try:
        fields = stat.read_text().rpartition(")")[2].split()
    except OSError:
        return False  # it exited while we looked
    return len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X")


async def _wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll ``predicate`` until true or ``seconds`` passed: the kernel offers no wait on a group."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


async def terminate_group(pgid: int, grace: float) -> None:
    """SIGTERM the group, SIGKILL what still runs after ``grace``, then wait for it to be reaped."""
    if not _group_running(pgid) or not _signal_group(pgid, signal.SIGTERM):
        return  # nothing runs: zombies left are init's to reap, and signals cannot touch them
    if not await _wait_until(lambda: not _group_running(pgid), grace):
        _signal_group(pgid, signal.SIGKILL)
    # Orphaned descendants are reaped by init; wait so "finished" means no process of it remains.
    await _wait_until(lambda: not group_exists(pgid), REAP_SECONDS)
