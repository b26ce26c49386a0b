"""The breakdown benchmark measures what it says: each shape switches off exactly its part of testgate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.mcp_breakdown import PORT, SHAPES, _lifespan, call, shape
from bench.mcp_throughput import ENV, ORG, _prepare, guarded_app

MCP = f"/organizations/{ORG}/environments/{ENV}/mcp"


def _events(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "testgate.db") as connection:
        return int(connection.execute("SELECT count(*) FROM audit_events").fetchone()[0])


async def test_each_shape_leaves_out_its_part_and_the_whole_app_is_back_afterwards(tmp_path: Path) -> None:
    data_dir = tmp_path / "testgate"
    token, execution = await _prepare(data_dir)
    app = guarded_app(data_dir, PORT)
    stop = await _lifespan(app)
    seen: dict[str, tuple[bool, int]] = {}
    try:
        for number, name in enumerate((*SHAPES, "whole"), start=1):
            before = _events(data_dir)
            with shape(app, name):
                started = await call(app, MCP, token, execution, number)
            door = any(key == b"x-request-id" for key, _ in started["headers"])
            seen[name] = (door, _events(data_dir) - before)
    finally:
        await stop()

    assert seen == {
        "whole": (True, 1),
        "no front door": (False, 1),
        "no audit event": (True, 0),
        "neither": (False, 0),
    }
