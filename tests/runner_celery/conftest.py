"""Celery fixtures: a throwaway PostgreSQL database, broker names unique to the run, real worker
processes (``testgate worker`` in subprocesses) and a control plane with the Celery executor."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import kombu
import pytest
import yaml
from cryptography.fernet import Fernet
from kombu.exceptions import OperationalError
from pydantic import SecretStr
from sqlalchemy import select
from tests.conftest import _drop_postgres_database, _postgres_database, service_unavailable

from testgate.config import ArtifactSettings, CelerySettings, RunnerSettings, Settings
from testgate.platform import executions, tenancy, workflows
from testgate.platform.context import Platform
from testgate.platform.executions import TERMINAL
from testgate.platform.notify import SharedEvents, shared_events
from testgate.runner.celery_app import create_celery, default_queue, worker_queues
from testgate.runner.distributed import CeleryExecutor
from testgate.store.db import Database, create_engine
from testgate.store.executions import ExecutionRow, LogLineRow, StepRow
from testgate.store.migrate import upgrade

AMQP_URL = os.environ.get("TESTGATE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("TESTGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
WAIT_SECONDS = 60
POLL_SECONDS = 0.05
HEARTBEAT = 0.5
WORKER_MAIN = "import typer; from testgate.cli.worker import worker; typer.run(worker)"


def require_broker(url: str, name: str) -> None:
    try:
        with kombu.Connection(url, connect_timeout=3) as connection:
            connection.connect()
    except (OperationalError, OSError) as exc:
        service_unavailable(name, str(exc))


@dataclass
class Deployment:
    """What a control plane and its workers share: the store, the broker, queue names and the key."""

    database_url: str
    broker_url: str
    root: Path
    prefix: str = field(default_factory=lambda: f"tgt{secrets.token_hex(4)}")
    key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    on_lost: str = "requeue"
    redis: bool = False
    artifacts: ArtifactSettings | None = None  # None: files in data_dir, which every process shares

    @property
    def transport_options(self) -> dict[str, Any]:
        # Redis keys of this run only (kombu's own keys, like "unacked", are otherwise shared).
        return {"global_keyprefix": f"{self.prefix}:"} if self.redis else {}

    def celery(self, **overrides: Any) -> CelerySettings:
        values: dict[str, Any] = {
            "broker_url": self.broker_url,
            "queue_prefix": self.prefix,
            "secrets_key": self.key,
            "on_lost": self.on_lost,
            "broker_transport_options": self.transport_options,
            "notify_url": REDIS_URL if self.redis else None,
            **overrides,
        }
        return CelerySettings(**values)

    @property
    def data_dir(self) -> Path:
        """One directory for the control plane and every worker, as a shared mount: artifacts live there."""
        return self.root / "shared"

    @property
    def worker_data_dir(self) -> Path:
        """The workers' data directory: the shared one, or with artifacts in object storage one of their own."""
        return self.data_dir if self.artifacts is None else self.root / "worker"

    def settings(self, **celery: Any) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            config_dir=self.root / "config",
            database_url=self.database_url,
            runner=RunnerSettings(heartbeat_seconds=HEARTBEAT, kill_grace_seconds=1.0),
            celery=self.celery(**celery),
            artifacts=self.artifacts or ArtifactSettings(),
        )

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}
        env.update(
            TESTGATE_DATA_DIR=str(self.worker_data_dir),
            TESTGATE_DATABASE_URL=self.database_url,
            TESTGATE_RUNNER__HEARTBEAT_SECONDS=str(HEARTBEAT),
            TESTGATE_RUNNER__KILL_GRACE_SECONDS="1",
            TESTGATE_CELERY__BROKER_URL=self.broker_url,
            TESTGATE_CELERY__QUEUE_PREFIX=self.prefix,
            TESTGATE_CELERY__SECRETS_KEY=self.key,
            TESTGATE_CELERY__ON_LOST=self.on_lost,
            TESTGATE_CELERY__BROKER_TRANSPORT_OPTIONS=json.dumps(self.transport_options),
            TESTGATE_LOG_FORMAT="json",
        )
        if self.redis:
            env["TESTGATE_CELERY__NOTIFY_URL"] = REDIS_URL
        for name, value in (self.artifacts.model_dump(exclude_none=True) if self.artifacts else {}).items():
            plain = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"TESTGATE_ARTIFACTS__{name.upper()}"] = str(plain)
        return env


class Workers:
    """Worker processes, each in its own process group so a test can kill one outright."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.labels: dict[str, dict[str, str]] = {}

    def start(self, name: str, labels: dict[str, str] | None = None, concurrency: int = 1) -> None:
        argv = [sys.executable, "-c", WORKER_MAIN, "--name", name, "--concurrency", str(concurrency)]
        for key, value in (labels or {}).items():
            argv += ["--label", f"{key}={value}"]
        with open(self.deployment.root / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=self.deployment.worker_env(), stdout=log, stderr=log, start_new_session=True
            )
        self.labels[name] = dict(labels or {})

    def log(self, name: str) -> str:
        return (self.deployment.root / f"{name}.log").read_text(errors="replace")

    def kill(self, name: str) -> None:
        """SIGKILL the worker and its pool processes, as a machine that lost power."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def queues(self) -> set[str]:
        prefix = self.deployment.prefix
        names = {default_queue(prefix)}
        for labels in self.labels.values():
            names.update(worker_queues(prefix, labels))
        return names


def delete_broker_state(deployment: Deployment, queues: set[str]) -> None:
    """Remove what this run left on the broker, so runs do not accumulate queues."""
    if deployment.redis:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{deployment.prefix}*"):
            client.delete(key)
        client.close()
        return
    with kombu.Connection(deployment.broker_url) as connection:
        channel = connection.channel()
        for name in queues:
            channel.queue_delete(name)


async def prepare_database() -> str:
    url = await _postgres_database()
    engine = create_engine(url)
    await upgrade(engine)
    db = Database(engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "acme", "dev")
    await db.dispose()
    return url


def _deployment(root: Path, database_url: str, broker: str, on_lost: str) -> tuple[Deployment, Workers]:
    root.mkdir(parents=True)
    redis = broker == "redis"
    deployment = Deployment(database_url, REDIS_URL if redis else AMQP_URL, root, on_lost=on_lost, redis=redis)
    return deployment, Workers(deployment)


def _check_broker(broker: str) -> None:
    redis = broker == "redis"
    require_broker(REDIS_URL if redis else AMQP_URL, "Redis" if redis else "RabbitMQ")


@contextmanager
def deployed(root: Path, *, broker: str = "rabbitmq", on_lost: str = "requeue") -> Iterator[tuple[Deployment, Workers]]:
    """A deployment with its own database (for module-scoped fixtures); all of it removed after."""
    _check_broker(broker)
    deployment, workers = _deployment(root, asyncio.run(prepare_database()), broker, on_lost)
    try:
        yield deployment, workers
    finally:
        workers.stop_all()
        delete_broker_state(deployment, workers.queues() | asyncio.run(queues_used(deployment.database_url)))
        asyncio.run(_drop_postgres_database(deployment.database_url))


@asynccontextmanager
async def adeployed(
    root: Path, *, broker: str = "rabbitmq", on_lost: str = "requeue"
) -> AsyncIterator[tuple[Deployment, Workers]]:
    """``deployed`` for one test's event loop."""
    _check_broker(broker)
    deployment, workers = _deployment(root, await prepare_database(), broker, on_lost)
    try:
        yield deployment, workers
    finally:
        await anyio.to_thread.run_sync(workers.stop_all)
        used = await queues_used(deployment.database_url)
        await anyio.to_thread.run_sync(delete_broker_state, deployment, workers.queues() | used)
        await _drop_postgres_database(deployment.database_url)


async def queues_used(url: str) -> set[str]:
    """The queues executions were sent to (a target no worker serves leaves one behind)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(ExecutionRow.queue).distinct())
            return {queue for (queue,) in rows if queue}
    finally:
        await engine.dispose()


def wait_ready(deployment: Deployment, *names: str) -> None:
    """Wait until every named worker answers a ping through the broker (it then consumes its queues)."""
    app = create_celery(deployment.settings())
    waiting = set(names)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while waiting:
            assert time.monotonic() < deadline, f"workers {sorted(waiting)} did not answer"
            for reply in app.control.ping(destination=sorted(waiting), timeout=0.5) or []:
                waiting -= set(reply)
    finally:
        app.close()


async def ready(deployment: Deployment, *names: str) -> None:
    await anyio.to_thread.run_sync(wait_ready, deployment, *names)


Deploy = Callable[..., Awaitable[tuple[Deployment, Workers]]]


@pytest.fixture
async def deploy(tmp_path: Path) -> AsyncIterator[Deploy]:
    """Makes deployments for one test (say, with on_lost=fail)."""
    async with AsyncExitStack() as stack:

        async def make(**options: Any) -> tuple[Deployment, Workers]:
            return await stack.enter_async_context(adeployed(tmp_path / secrets.token_hex(3), **options))

        yield make


def definition(steps: list[dict[str, Any]], name: str, **spec: Any) -> str:
    document = {"kind": "TestWorkflow", "metadata": {"name": name}, "spec": {**spec, "steps": steps}}
    return yaml.safe_dump(document, sort_keys=False)


async def create_execution(
    platform: Platform,
    steps: list[dict[str, Any]],
    *,
    name: str = "wf",
    values: dict[str, Any] | None = None,
    **spec: Any,
) -> executions.Created:
    """A queued execution of a workflow with these steps (applied as ``name``) in acme/dev."""
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
        saved = await workflows.save(session, env, definition(steps, name, **spec), max_bytes=256 * 1024, mode="apply")
        return await executions.create(session, env, saved.row, config=values or {}, tags={}, created_by="t")


@dataclass
class Finished:
    row: ExecutionRow
    steps: list[StepRow]
    lines: list[LogLineRow]

    def step_texts(self, index: int) -> list[str]:
        return [line.text for line in self.lines if line.step == index]

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]


class ControlPlane:
    """The control plane of one test: a platform with the Celery executor and relayed events."""

    def __init__(self, platform: Platform, executor: CeleryExecutor) -> None:
        self.platform = platform
        self.executor = executor

    async def create(self, steps: list[dict[str, Any]], **kwargs: Any) -> executions.Created:
        return await create_execution(self.platform, steps, **kwargs)

    async def start(self, steps: list[dict[str, Any]], **kwargs: Any) -> str:
        created = await self.create(steps, **kwargs)
        await self.executor.submit(created.row.id, created.secrets)
        return created.row.id

    async def row(self, execution_id: str) -> ExecutionRow:
        async with self.platform.db.session() as session:
            row = await session.get(ExecutionRow, execution_id)
        assert row is not None
        return row

    async def wait_until(self, execution_id: str, check: Callable[[ExecutionRow], bool]) -> ExecutionRow:
        """Wait, on relayed notifications with a short recheck, until ``check`` holds for the row."""
        with anyio.fail_after(WAIT_SECONDS):
            while True:
                seen = self.platform.events.snapshot([execution_id])
                row = await self.row(execution_id)
                if check(row):
                    return row
                await self.platform.events.wait_any(seen, timeout=POLL_SECONDS * 10)

    async def finished(self, execution_id: str) -> Finished:
        await self.wait_until(execution_id, lambda row: row.status in TERMINAL)
        return await self.load(execution_id)

    async def load(self, execution_id: str) -> Finished:
        async with self.platform.db.session() as session:
            row = await session.get(ExecutionRow, execution_id)
            assert row is not None
            steps = await executions.steps_of(session, execution_id)
            lines = await session.scalars(
                select(LogLineRow).where(LogLineRow.execution_id == execution_id).order_by(LogLineRow.seq)
            )
            return Finished(row, steps, list(lines))


@asynccontextmanager
async def control_plane(deployment: Deployment, **celery: Any) -> AsyncIterator[ControlPlane]:
    settings = deployment.settings(**celery)
    db = Database(create_engine(settings.effective_database_url))
    events = shared_events(settings)
    assert isinstance(events, SharedEvents)
    await events.start()
    platform = Platform(settings=settings, db=db, events=events)
    executor = CeleryExecutor(platform)
    platform.executor = executor
    await executor.start()
    try:
        yield ControlPlane(platform, executor)
    finally:
        await executor.close()
        await events.close()
        await db.dispose()


def numbered(count: int, pause: float = 0.0) -> str:
    """A step printing ``line 1`` … ``line <count>``."""
    sleep = f"; sleep {pause}" if pause else ""
    return f'i=1; while [ $i -le {count} ]; do echo "line $i"{sleep}; i=$((i+1)); done'


def lines_of(count: int) -> list[str]:
    return [f"line {i}" for i in range(1, count + 1)]


def assert_dense(done: Finished) -> None:
    """Every stored line once, numbered 1..n without a gap, and the counter in step."""
    assert [line.seq for line in done.lines] == list(range(1, len(done.lines) + 1))
    assert done.row.log_lines == len(done.lines)
