"""Executor throughput: executions per minute of a trivial workflow (one ``true`` step).

    .venv/bin/python -m bench.executors --count 120 \\
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--broker amqp://guest:guest@127.0.0.1:5672//]

One run, same machine, side by side: the local runner (in this process, its default concurrency of 4)
and the Celery executor with 1, 2 and 4 worker processes (``testgate worker --concurrency 1`` each).
Every configuration uses a fresh PostgreSQL database; executions are created first, then the clock
runs from the first submit until the last one is recorded as finished. A warm-up round per
configuration is not timed (pool processes open their connections then).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as host
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import kombu
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from testgate.config import CelerySettings, RunnerSettings, Settings
from testgate.platform import executions, tenancy, workflows
from testgate.platform.context import Platform
from testgate.platform.executions import TERMINAL
from testgate.runner.base import Executor
from testgate.runner.celery_app import create_celery, default_queue
from testgate.runner.distributed import CeleryExecutor
from testgate.runner.local import LocalExecutor
from testgate.store.db import Database, create_engine
from testgate.store.executions import ExecutionRow
from testgate.store.migrate import upgrade

WORKER_MAIN = "import typer; from testgate.cli.worker import worker; typer.run(worker)"
WORKFLOW = {
    "kind": "TestWorkflow",
    "metadata": {"name": "trivial"},
    "spec": {"steps": [{"name": "t", "shell": "true"}]},
}
POLL_SECONDS = 0.02  # polling, not notifications: the same light load on the store for every executor


async def _database(server: str) -> str:
    import asyncpg

    base = make_url(server)
    name = f"tg_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username, database=base.database)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return base.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)


async def _drop(server: str, url: str) -> None:
    import asyncpg

    base = make_url(server)
    conn = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username, database=base.database)
    await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await conn.close()


async def _create(platform: Platform, count: int) -> list[executions.Created]:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "bench")
        env = await tenancy.environment_by_slug(session, org, "dev")
        saved = await workflows.save(session, env, yaml.safe_dump(WORKFLOW), max_bytes=65536, mode="apply")
        return [
            await executions.create(session, env, saved.row, config={}, tags={}, created_by="bench")
            for _ in range(count)
        ]


async def _finished(platform: Platform, ids: list[str]) -> int:
    async with platform.db.session() as session:
        query = select(func.count()).where(ExecutionRow.id.in_(ids), ExecutionRow.status.in_(sorted(TERMINAL)))
        return int(await session.scalar(query) or 0)


async def _round(platform: Platform, executor: Executor, count: int) -> float:
    """Seconds from the first submit until ``count`` executions are recorded as finished."""
    created = await _create(platform, count)
    ids = [c.row.id for c in created]
    began = time.perf_counter()
    for item in created:
        await executor.submit(item.row.id, item.secrets)
    while True:
        if await _finished(platform, ids) == count:
            return time.perf_counter() - began
        await asyncio.sleep(POLL_SECONDS)


@asynccontextmanager
async def _platform(settings: Settings) -> AsyncIterator[Platform]:
    db = Database(create_engine(settings.effective_database_url))
    await upgrade(db.engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "bench", "dev")
    try:
        yield Platform(settings=settings, db=db)
    finally:
        await db.dispose()


def _settings(root: Path, url: str, broker: str, prefix: str, key: str) -> Settings:
    celery = CelerySettings(broker_url=broker, queue_prefix=prefix, secrets_key=key)
    return Settings(data_dir=root / "control", database_url=url, runner=RunnerSettings(), celery=celery)


def _start_workers(root: Path, settings: Settings, broker: str, count: int, key: str) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}
    env.update(
        TESTGATE_DATABASE_URL=settings.effective_database_url,
        TESTGATE_CELERY__BROKER_URL=broker,
        TESTGATE_CELERY__QUEUE_PREFIX=settings.celery.queue_prefix,
        TESTGATE_CELERY__SECRETS_KEY=key,
        TESTGATE_LOG_LEVEL="WARNING",
    )
    processes = []
    for index in range(count):
        argv = [sys.executable, "-c", WORKER_MAIN, "--name", f"bench{index}@bench", "--concurrency", "1"]
        with open(root / f"worker{index}.log", "wb") as log:
            env["TESTGATE_DATA_DIR"] = str(root / f"worker{index}")
            processes.append(subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True))
    app = create_celery(settings)
    waiting = {f"bench{index}@bench" for index in range(count)}
    while waiting:
        if any(process.poll() is not None for process in processes):
            _stop(processes)
            raise RuntimeError(f"a worker exited; see {root}/worker*.log")
        for reply in app.control.ping(destination=sorted(waiting), timeout=0.5) or []:
            waiting -= set(reply)
    app.close()
    return processes


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


async def _measure(server: str, broker: str, workers: int, count: int, root: Path) -> float:
    """Executions per minute: the local runner when ``workers`` is 0, else that many Celery workers."""
    url = await _database(server)
    prefix, key = f"tgbench{secrets.token_hex(3)}", Fernet.generate_key().decode()
    await asyncio.to_thread(root.mkdir, parents=True)
    settings = _settings(root, url, broker, prefix, key)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        async with _platform(settings) as platform:  # migrated before any worker checks the schema
            processes = await asyncio.to_thread(_start_workers, root, settings, broker, workers, key)
            executor: Executor = CeleryExecutor(platform) if workers else LocalExecutor(platform)
            await executor.start()
            await _round(platform, executor, max(4, 2 * workers))  # warm-up
            seconds = await _round(platform, executor, count)
            await executor.close()
    finally:
        _stop(processes)
        with kombu.Connection(broker) as connection:
            connection.channel().queue_delete(default_queue(prefix))
        await _drop(server, url)
    return count / seconds * 60


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        local = await _measure(args.postgres, args.broker, 0, args.count, Path(tmp) / "local")
        results = [("local runner (concurrency 4)", local)]
        for workers in (1, 2, 4):
            rate = await _measure(args.postgres, args.broker, workers, args.count, Path(tmp) / f"celery{workers}")
            results.append((f"celery, {workers} worker process{'es' if workers > 1 else ''}", rate))
    print(f"{args.count} executions of one `true` step; {os.cpu_count()} CPUs, {host.platform()}")
    print("| executor | executions/min | vs local |")
    print("|---|---:|---:|")
    for name, rate in results:
        print(f"| {name} | {rate:,.0f} | {rate / local:.2f}x |")


if __name__ == "__main__":
    asyncio.run(main())
