"""Listing executions at scale: time keyset pages against OFFSET pages over N executions.

    .venv/bin/python -m bench.list_executions --count 1000000 [--database-url postgresql://...]

Inserts N executions into a fresh store (SQLite file by default), then times the first page, a page
deep in the list reached by cursor, and the same depth reached by OFFSET, side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from testgate.config import Settings
from testgate.ids import new_id
from testgate.platform import executions, tenancy
from testgate.store.db import Database, create_engine
from testgate.store.executions import ExecutionRow
from testgate.store.migrate import upgrade

BATCH = 20_000


async def _fill(db: Database, env_id: str, count: int) -> None:
    start = datetime.now(UTC) - timedelta(days=365)
    statuses = ["passed", "failed", "passed", "passed", "timed_out"]
    for offset in range(0, count, BATCH):
        rows = [
            {
                "id": new_id(),
                "environment_id": env_id,
                "workflow_id": None,
                "workflow_name": f"wf-{i % 40}",
                "number": i + 1,
                "status": statuses[i % len(statuses)],
                "created_at": start + timedelta(seconds=i * 30),
            }
            for i in range(offset, min(offset + BATCH, count))
        ]
        rows.sort(key=lambda r: str(r["id"]))
        async with db.session() as session:
            await session.execute(insert(ExecutionRow), rows)


async def _timed(fn, repeat: int = 20) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1000


async def main(count: int, url: str | None, depth: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=tmp, database_url=url)
    db = Database(create_engine(settings.effective_database_url))
    await upgrade(db.engine)
    async with db.session() as session:
        boot = await tenancy.bootstrap(session, "bench", "dev", issue_setup_token=False)
    env = boot.environment
    began = time.perf_counter()
    await _fill(db, env.id, count)
    print(f"inserted {count} executions in {time.perf_counter() - began:.1f}s ({db.engine.dialect.name})")
    async with db.session() as session:
        deep_id = await session.scalar(
            select(ExecutionRow.id)
            .where(ExecutionRow.environment_id == env.id)
            .order_by(ExecutionRow.id.desc())
            .offset(depth)
            .limit(1)
        )
    cursor = executions.encode_cursor(deep_id)

    async def first() -> None:
        async with db.session() as s:
            await executions.list_page(s, env, limit=50)

    async def keyset() -> None:
        async with db.session() as s:
            await executions.list_page(s, env, limit=50, cursor=cursor)

    async def filtered() -> None:
        async with db.session() as s:
            await executions.list_page(s, env, limit=50, workflow="wf-7", status=["failed"], cursor=cursor)

    async def offset() -> None:
        async with db.session() as s:
            await s.execute(
                text("SELECT * FROM executions WHERE environment_id = :e ORDER BY id DESC LIMIT 50 OFFSET :o"),
                {"e": env.id, "o": depth},
            )

    results = {
        "first page": await _timed(first),
        f"keyset page at depth {depth}": await _timed(keyset),
        f"keyset, workflow+status filter, depth {depth}": await _timed(filtered),
        f"OFFSET page at depth {depth}": await _timed(offset, repeat=5),
    }
    for name, ms in results.items():
        print(f"{name:50s} {ms:9.2f} ms (median)")
    ratio = results[f"OFFSET page at depth {depth}"] / results[f"keyset page at depth {depth}"]
    print(f"OFFSET / keyset at the same depth: {ratio:.0f}x")
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--depth", type=int, default=900_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.database_url, min(args.depth, args.count - 51)))
