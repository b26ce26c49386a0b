"""Loops that must outlive a database outage: a worker's heartbeat, the local runner's, and the reaper.

asyncpg raises ConnectionRefusedError (an OSError, not a SQLAlchemyError) while PostgreSQL is down. The
loops caught only SQLAlchemyError, so the first beat or sweep in an outage ended them for good: the reaper
never settled an orphan again, and a healthy execution's heartbeat went stale, so it was taken over and
ran twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from testgate.platform.context import Platform
from testgate.runner import reaper, state, worker

REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


class _Flaky:
    """Fails ``failures`` times with ``error``, then counts calls and answers ``answer``."""

    def __init__(self, error: BaseException, failures: int, answer: Any = None) -> None:
        self.error, self.failures, self.answer = error, failures, answer
        self.calls = 0
        self.recovered = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.recovered.set()
        return self.answer


@pytest.fixture
def fast(platform: Platform) -> Platform:
    platform.settings.runner.heartbeat_seconds = 0.01
    return platform


async def test_a_workers_heartbeat_beats_again_once_the_database_is_back(
    fast: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = _Flaky(REFUSED, failures=3, answer={})
    monkeypatch.setattr(state, "heartbeat", flaky)
    job = worker.Job(fast, "01ARZ3NDEKTSV4RRFFQ69G5FAV", {}, "runner-1")

    beat = asyncio.create_task(worker._beat(fast, job))
    try:
        await asyncio.wait_for(flaky.recovered.wait(), timeout=5)
    finally:
        beat.cancel()
    assert flaky.calls >= 4
    assert not beat.done() or beat.cancelled()


async def test_the_reaper_sweeps_again_once_the_database_is_back(
    fast: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = _Flaky(REFUSED, failures=3)
    monkeypatch.setattr(reaper, "sweep", flaky)

    loop = asyncio.create_task(reaper.run_reaper(fast, resend=None))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(flaky.recovered.wait(), timeout=5)
    finally:
        loop.cancel()
    assert flaky.calls >= 4
