"""The scale-out executor: executions go to Celery workers through a broker; PostgreSQL stays the truth.

``submit`` records the queue in the store, then publishes a task carrying the execution id and its
sealed sensitive values. When the broker cannot be reached within ``celery.publish_timeout`` the
execution is failed with the reason "broker unavailable: …" and ``submit`` raises, so nothing stays
queued that no queue holds; a message that still arrives later finds it finished and is dropped.
Aborts go through the store (``abort_requested_at``), which the worker's heartbeat polls; this
process also runs the reaper, so a worker that dies leaves nothing running.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping

import anyio
import structlog
from kombu.exceptions import OperationalError
from sqlalchemy import update

from testgate.errors import InvalidInput, RunnerError
from testgate.platform import spec as specs
from testgate.platform.context import Platform
from testgate.runner import reaper, state
from testgate.runner.celery_app import TASK, SecretBox, create_celery, target_queue
from testgate.runner.reconcile import Candidate, fail, reconcile
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow

log = structlog.get_logger("testgate.runner")

ABORTED = "aborted on request"


class CeleryExecutor:
    """Sends executions to Celery workers; implements ``testgate.runner.base.Executor``."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.app = create_celery(platform.settings)
        self._box = SecretBox.from_settings(platform.settings, create=True)
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Fail what a stopped local runner left behind (not what waits in the broker); start the reaper."""
        if self._reaper is not None:
            return
        await reconcile(self.platform)
        self._reaper = asyncio.create_task(reaper.run_reaper(self.platform, self._resend), name="testgate-reaper")

    async def submit(self, execution_id: str, secrets: Mapping[str, str]) -> None:
        """Send a created execution to the queue its ``target.match`` selects."""
        row = await state.load(self.platform, execution_id)
        if row is None or row.status != "queued":
            raise RunnerError(f"execution {execution_id!r} is not queued")
        try:
            queue = route(self.platform.settings.celery.queue_prefix, row)
        except (RunnerError, InvalidInput) as exc:  # InvalidInput: a target no worker could ever take (422)
            await self._refuse(row, f"the execution cannot be routed to a worker: {' '.join(str(exc).split())}")
            raise
        if not await _mark_sent(self.platform, execution_id, queue):
            raise RunnerError(f"execution {execution_id!r} is not queued")
        await self._send(row, queue, self._box.seal(execution_id, secrets))

    async def _resend(self, row: ExecutionRow) -> None:
        """The reaper's requeue: the same queue, no sensitive values (it only requeues those needing none)."""
        queue = row.queue or route(self.platform.settings.celery.queue_prefix, row)
        try:
            await self._send(row, queue, self._box.seal(row.id, {}))
        except RunnerError as exc:
            log.warning("a requeued execution could not be sent again", execution_id=row.id, reason=exc.message)

    async def _send(self, row: ExecutionRow, queue: str, sealed: str) -> None:
        publish = functools.partial(self.app.send_task, TASK, args=[row.id, sealed], queue=queue, retry=True)
        timeout = self.platform.settings.celery.publish_timeout
        try:
            with anyio.fail_after(timeout):
                # kombu blocks; a thread abandoned at the timeout may still publish, and that message
                # then finds the execution failed and is dropped by the worker.
                await anyio.to_thread.run_sync(publish, abandon_on_cancel=True)
        except (OperationalError, OSError, TimeoutError) as exc:
            reason = f"broker unavailable: {str(exc) or f'no answer within {timeout:g}s'}"
            if await self._refuse(row, reason):
                raise RunnerError(reason) from None
            log.warning("publish reported an error, but a worker took the execution", execution_id=row.id)

    async def _refuse(self, row: ExecutionRow, reason: str) -> bool:
        """Fail a queued execution that never reached a worker; False if a worker took it meanwhile."""
        return await fail(self.platform, Candidate(row.id, "queued", None, utcnow()), reason)

    async def abort(self, execution_id: str) -> bool:
        """Abort through the store and wait (bounded) for the worker to record it; False if not open."""
        # The worker polls with its heartbeat, then stops the process group (SIGTERM, SIGKILL after grace).
        return await state.abort_by_request(self.platform, execution_id, ABORTED)

    async def close(self) -> None:
        """Stop the reaper; running executions are the workers' and carry on."""
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.wait({self._reaper})
            self._reaper = None
        await anyio.to_thread.run_sync(self.app.close)


def route(prefix: str, row: ExecutionRow) -> str:
    """The queue an execution waits in, from its workflow's ``target.match``."""
    try:
        target = specs.validate(row.spec).spec.target
    except InvalidInput as exc:
        raise RunnerError(f"its workflow is not valid: {exc}") from None
    return target_queue(prefix, target.match if target is not None else {})


async def _mark_sent(platform: Platform, execution_id: str, queue: str) -> bool:
    """Record the queue before publishing: from then on the broker holds it, not this process."""
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "queued")
        .values(queue=queue, heartbeat_at=utcnow())
    )
    async with platform.db.session() as session:
        result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
