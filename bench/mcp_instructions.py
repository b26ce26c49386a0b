"""Instructions per MCP tool call, counted by valgrind's callgrind: a measure this machine's noise cannot move.

    .venv/bin/python -m bench.mcp_instructions [--calls 20] [--rounds 2] [--write docs/performance.md]

The same shapes as ``bench.mcp_breakdown`` (the store baseline, and testgate whole, without its front
door, without its audit event, without both), driven the same way (raw ASGI ``tools/call`` requests of
``get_execution``, 2026-07-28 era, every answer checked), in one process that this script runs under
``valgrind --tool=callgrind``. Before each measured round the process calls ``os.getppid()`` and after it
``os.getpgrp()``; callgrind zeroes its counters when ``getppid`` is entered (``--zero-before``) and dumps
them when ``getpgrp`` is (``--dump-before``), so each dump holds one round's instructions, of every thread
(SQLite's in aiosqlite's threads too).

Instructions are not time: a cache miss or a system call counts the same however long it takes, and
callgrind runs the process some fifty times slower. But the same code on the same inputs executes the same
instructions, to within about 1 % here (the garbage collector and the WAL's growth move it a little), so a
change of a few per cent, which the wall clock on this shared machine cannot show, shows here. Each shape's
count is the smallest of its rounds: one-off work (a connection opened, a checkpoint) only ever adds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.mcp_breakdown import PORT, SHAPES, _lifespan, call, shape, tables
from bench.mcp_throughput import ENV, ORG, _prepare, guarded_app, machine, store_app, write_section

BEGIN, END = "<!-- mcp-instructions:begin -->", "<!-- mcp-instructions:end -->"
NAMES = ("store", *SHAPES)
ROOT = Path(__file__).resolve().parent.parent


# --- inside valgrind ------------------------------------------------------------------------------


async def _rounds(
    data_dir: Path, token: str, execution: str, calls: int, rounds: int, concurrency: int = 1
) -> list[str]:
    """Run the shapes in turns (the first turn warms up); returns the names of the measured rounds, in order.

    With ``concurrency`` above 1 the calls go that many at a time (``asyncio.gather``), so their audit
    events take the group commit's path, as under concurrent clients.
    """
    testgate, store = guarded_app(data_dir, PORT), store_app(data_dir)
    stops = [await _lifespan(testgate), await _lifespan(store)]
    mcp = f"/organizations/{ORG}/environments/{ENV}/mcp"
    runs: list[tuple[str, Any, str, str | None]] = [("store", store, "/mcp", None)]
    runs += [(name, testgate, mcp, token) for name in SHAPES]
    measured: list[str] = []
    number = 0
    try:
        for turn in range(rounds + 1):
            for name, app, path, bearer in runs:
                with shape(testgate, name if name != "store" else "whole"):
                    gc.collect()
                    if turn:
                        os.getppid()  # callgrind zeroes its counters here
                    for _ in range(calls // concurrency):
                        numbers = range(number + 1, number + concurrency + 1)
                        number += concurrency
                        await asyncio.gather(*(call(app, path, bearer, execution, n) for n in numbers))
                    if turn:
                        os.getpgrp()  # ... and dumps them here
                        measured.append(name)
    finally:
        for stop in stops:
            await stop()
    return measured


def inner(calls: int, rounds: int, order: Path, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="mcp-instructions-") as tmp:
        data_dir = Path(tmp) / "testgate"
        token, execution = asyncio.run(_prepare(data_dir))
        measured = asyncio.run(_rounds(data_dir, token, execution, calls, rounds, concurrency))
    order.write_text(json.dumps(measured))


# --- outside --------------------------------------------------------------------------------------


def counted(dumps: list[Path], order: list[str], calls: int) -> dict[str, float]:
    """Instructions per call of each shape: the smallest of its rounds. ``dumps`` in the order callgrind wrote them."""
    if len(dumps) != len(order):
        raise RuntimeError(f"{len(dumps)} callgrind dumps for {len(order)} measured rounds")
    per_round: dict[str, list[float]] = {}
    for dump, name in zip(dumps, order, strict=True):
        found = re.search(r"^summary:\s*(\d+)", dump.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no summary in {dump}")
        per_round.setdefault(name, []).append(int(found.group(1)) / calls)
    return {name: min(values) for name, values in per_round.items()}


def _dump_number(path: Path) -> int:
    return int(path.name.rsplit(".", 1)[1])


def measure(calls: int, rounds: int, concurrency: int = 1) -> dict[str, float]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="mcp-callgrind-") as tmp:
        out, order = Path(tmp), Path(tmp) / "order.json"
        command = [
            valgrind,
            "--tool=callgrind",
            "--zero-before=getppid",
            "--dump-before=getpgrp",
            "--dump-instr=no",
            f"--callgrind-out-file={out}/callgrind.out",
            sys.executable,
            "-m",
            "bench.mcp_instructions",
            "--inner",
            f"--calls={calls}",
            f"--rounds={rounds}",
            f"--concurrency={concurrency}",
            f"--order={order}",
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not order.exists():
            raise RuntimeError(f"the run under callgrind failed ({done.returncode}):\n{done.stderr[-3000:]}")
        dumps = sorted(out.glob("callgrind.out.*"), key=_dump_number)
        return counted(dumps, json.loads(order.read_text()), calls)


def report(counts: dict[str, float], calls: int, rounds: int, concurrency: int = 1) -> str:
    command = " ".join(["python -m bench.mcp_instructions", *sys.argv[1:]])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`",
        f"on {machine()}; store: a SQLite file (WAL); {rounds} rounds of {calls} calls per shape"
        + (f", {concurrency} at a time," if concurrency > 1 else "")
        + " under callgrind, the smallest round of each.",
        "",
        *tables(counts, "instructions"),
        "",
        f"testgate/store by instructions per call: {counts['store'] / counts['whole']:.3f}x.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, help="calls per shape and round")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds (after one warm-up round)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls at a time (a divisor of --calls)")
    parser.add_argument("--write", metavar="MARKDOWN", help="put the results into this file's generated block")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--order", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calls % args.concurrency:
        parser.error("--calls must be a multiple of --concurrency")
    if args.inner:
        inner(args.calls, args.rounds, args.order, args.concurrency)
        return
    text = report(measure(args.calls, args.rounds, args.concurrency), args.calls, args.rounds, args.concurrency)
    print(text)
    if args.write:
        write_section(Path(args.write), text, (BEGIN, END), "### Instructions per call (callgrind)")


if __name__ == "__main__":
    main()
