"""A Celery worker that runs executions with the local runner's job code, against the shared store.

``run_worker`` starts a prefork worker consuming the default queue and one queue per non-empty subset
of its labels (see ``celery_app``). Each pool process keeps one event loop and one ``Platform`` and
runs one execution at a time with ``Job``: the steps, timeouts, masking, artifacts and JUnit handling
of ``LocalExecutor``. While it runs, a heartbeat vouches for it and polls for an abort asked through
the store. What a delivery finds decides what happens, so a redelivered message never runs twice:

    queued                       run it (``mark_running`` lets exactly one runner win)
    finished, or gone            drop the message
    running, its runner alive    check again later (the message is re-sent with a countdown)
    running, its runner lost     settle it per ``celery.on_lost`` (runner.reaper); run it if requeued
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from celery import Celery
from celery.signals import worker_process_shutdown
from sqlalchemy.exc import SQLAlchemyError

from testgate.config import Settings
from testgate.errors import RunnerError
from testgate.platform.context import Platform
from testgate.platform.events import Events
from testgate.platform.executions import TERMINAL
from testgate.platform.notify import SharedEvents, shared_events
from testgate.runner import state
from testgate.runner.celery_app import TASK, SecretBox, create_celery, worker_queues
from testgate.runner.job import Job
from testgate.runner.reaper import is_lost, settle_lost
from testgate.runner.reconcile import (
    STALE_HEARTBEATS,
    Candidate,
    fail,
    new_runner_id,
    remove_leftover_workspaces,
)
from testgate.runtime import database_for
from testgate.store.base import utcnow
from testgate.store.db import UNREACHABLE, create_engine
from testgate.store.migrate import current_revision, head_revision

log = structlog.get_logger("testgate.worker")

ABORTED = "aborted on request"
TAKEN_OVER = "stopped: another worker took this execution over after this one was presumed lost"
MAX_DEFER_SECONDS = 60.0
_DECISIONS = 3  # a requeue, then the run: more means another process keeps changing it


def default_name() -> str:
    return f"testgate-{os.getpid()}"


def run_worker(
    settings: Settings,
    labels: Mapping[str, str],
    concurrency: int,
    *,
    queues: Sequence[str] | None = None,
    name: str | None = None,
) -> int:
    """Run a worker until it is stopped (SIGTERM waits for running executions); its exit code."""
    name = name if name and "@" in name else f"{name or default_name()}@{socket.gethostname()}"
    consumed = list(queues) if queues else worker_queues(settings.celery.queue_prefix, labels)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    asyncio.run(_check_schema(settings))  # before the pool forks: no engine or loop crosses a fork
    app = worker_app(settings, name)
    log.info("worker starting", name=name, labels=dict(labels), queues=consumed, concurrency=concurrency)
    worker = app.Worker(
        hostname=name,
        queues=consumed,
        concurrency=concurrency,
        pool="prefork",
        loglevel=settings.log_level.upper(),
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
        quiet=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


async def _check_schema(settings: Settings) -> None:
    """Refuse a store whose schema this worker's code does not match (the control plane migrates it)."""
    engine = create_engine(settings.effective_database_url)
    try:
        found, needed = await current_revision(engine), head_revision()
    except (SQLAlchemyError, OSError) as exc:
        raise RunnerError(f"cannot reach the database: {exc}") from None
    finally:
        await engine.dispose()
    if found != needed:
        at = f"is at {found}" if found is not None else "has no schema yet (no migration applied)"
        raise RunnerError(f"the database {at}; this worker needs {needed}: run `testgate db upgrade`")


def worker_app(settings: Settings, name: str) -> Celery:
    """The Celery app with the execution task registered."""
    app = create_celery(settings)
    box = SecretBox.from_settings(settings, create=False)

    def run_execution(task: Any, execution_id: str, sealed: str) -> None:
        process = _pool_process(settings, name)
        try:
            delay = process.attend(execution_id, sealed, box)
        except UNREACHABLE:
            # The store is unreachable: acknowledging would lose the message, so look again later.
            log.warning("the store failed while taking an execution", execution_id=execution_id, exc_info=True)
            delay = defer_seconds(process.platform)
        if delay is not None:
            raise task.retry(countdown=delay)

    # Unbounded retries: each one is a later look at an execution another live worker is running.
    options = {"acks_late": True, "reject_on_worker_lost": True, "max_retries": None, "ignore_result": True}
    app.task(name=TASK, bind=True, **options)(run_execution)
    return app


class _PoolProcess:
    """One pool process's event loop and platform: made after the fork, kept for every task."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.pid = os.getpid()
        self.runner_id = new_runner_id(name)
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        events = shared_events(settings)
        db = database_for(settings)
        self.platform = Platform(settings=settings, db=db, events=events or Events())
        if events is not None:
            self.loop.run_until_complete(events.start(listen=False))  # it only publishes
        try:  # what a worker killed on this machine left behind (its executions were settled elsewhere)
            self.loop.run_until_complete(remove_leftover_workspaces(self.platform))
        except UNREACHABLE:
            log.warning("could not look for leftover workspaces", exc_info=True)

    def attend(self, execution_id: str, sealed: str, box: SecretBox) -> float | None:
        return self.loop.run_until_complete(attend(self.platform, self.runner_id, execution_id, sealed, box))

    def close(self) -> None:
        events = self.platform.events
        if isinstance(events, SharedEvents):
            self.loop.run_until_complete(events.close())
        self.loop.run_until_complete(self.platform.db.dispose())
        self.loop.close()


_process: _PoolProcess | None = None


def _pool_process(settings: Settings, name: str) -> _PoolProcess:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = _PoolProcess(settings, name)
    return _process


def _close_pool_process(**_: Any) -> None:
    global _process
    if _process is not None and _process.pid == os.getpid():
        process, _process = _process, None
        process.close()


worker_process_shutdown.connect(_close_pool_process, weak=False)


async def attend(platform: Platform, runner_id: str, execution_id: str, sealed: str, box: SecretBox) -> float | None:
    """Handle one delivery; the seconds until it should be looked at again, or None when it is done."""
    try:
        secrets = box.open(sealed, execution_id)
    except RunnerError as exc:
        queued = Candidate(execution_id, "queued", None, utcnow())
        if await fail(platform, queued, f"the worker cannot run it: {exc.message}"):
            log.error("refused an execution", execution_id=execution_id, reason=exc.message)
        return None
    for _ in range(_DECISIONS):
        row = await state.load(platform, execution_id)
        if row is None or row.status in TERMINAL:
            return None
        if row.status == "queued":
            await run(platform, runner_id, execution_id, secrets)
            return None
        if not is_lost(platform, row):
            return defer_seconds(platform)
        await settle_lost(platform, row, have_secrets=True, resend=None)
    return None


def defer_seconds(platform: Platform) -> float:
    """Long enough for a live runner's silence to become loss, short enough to notice it soon."""
    return min(MAX_DEFER_SECONDS, max(1.0, STALE_HEARTBEATS * platform.settings.runner.heartbeat_seconds))


async def run(platform: Platform, runner_id: str, execution_id: str, secrets: Mapping[str, str]) -> bool:
    """Run a queued execution here with a heartbeat beside it; False if another runner took it."""
    job = Job(platform, execution_id, secrets, runner_id)
    beat = asyncio.create_task(_beat(platform, job), name=f"heartbeat-{execution_id}")
    try:
        return await job.run()
    finally:
        beat.cancel()
        await asyncio.wait({beat})


async def _beat(platform: Platform, job: Job) -> None:
    interval = platform.settings.runner.heartbeat_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            stop = await state.heartbeat(platform, [job.execution_id], runner_id=job.runner_id)
        except UNREACHABLE:
            # A busy or briefly unreachable store: the next beat tries again.
            log.warning("heartbeat failed", execution_id=job.execution_id, exc_info=True)
            continue
        for why in stop.values():
            job.request_abort(ABORTED if why == "abort" else TAKEN_OVER)
