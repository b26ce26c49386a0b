"""Where testgate's extra time per MCP tool call goes: its parts switched off one by one, in one process.

    .venv/bin/python -m bench.mcp_breakdown [--calls 200] [--rounds 10] [--write docs/performance.md]
        [--database-url postgresql+asyncpg://user@host/empty_database]

``bench.mcp_throughput`` measures whole servers over the network, where this shared machine's noise
(about ±0.05 in a ratio) is as large as any one part of testgate's stack. This benchmark takes the
network, uvicorn and the other processes out: in one process it builds testgate's application and the
store baseline's (``bench.mcp_throughput.store_app``: the same handler on the same SQLite file, no
security), and drives both with raw ASGI requests - the 2026-07-28 era's stateless ``tools/call`` of
``get_execution``, every answer checked - in rounds that take turns, counting CPU time per call
(``time.process_time``: every thread of the process, SQLite's included). testgate runs in four shapes:

- **whole**: everything a hosted call goes through;
- **no front door**: the lane goes straight to the MCP endpoints, past the front door's layers (request
  id, access log and metrics, body limit, Host/Origin, rate limit, panic guard, timeout);
- **no audit event**: ``dispatch`` writes no event for a successful call (measurement only: testgate
  never runs like this);
- **neither**: what is left is the Guard (bearer token, environment), ``dispatch`` (scope, validation,
  RBAC) and the tool glue.

The differences between the shapes' medians are what each part costs inside a running server, where
the same Python costs two to three times what it costs in a micro-benchmark (a call's path through
the SDK, SQLAlchemy and SQLite keeps the CPU's caches cold).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from bench.mcp_throughput import (
    ACCEPT,
    ENV,
    ERAS,
    ORG,
    STATELESS_CALL,
    _prepare,
    guarded_app,
    machine,
    stateless_call,
    store_app,
    write_section,
)

BEGIN, END = "<!-- mcp-breakdown:begin -->", "<!-- mcp-breakdown:end -->"
BEGIN_PG, END_PG = "<!-- mcp-breakdown-postgresql:begin -->", "<!-- mcp-breakdown-postgresql:end -->"
PORT = 8080  # the Host header the requests carry (testgate accepts its own loopback names)


async def _lifespan(app: ASGIApp) -> Callable[[], Awaitable[None]]:
    """Start ``app``'s lifespan; return what shuts it down."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"startup failed: {started}")

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


async def call(app: ASGIApp, path: str, token: str | None, execution: str, number: int) -> Message:
    """One stateless ``tools/call`` of ``get_execution`` as raw ASGI; raises unless it succeeded.

    Returns the response's start message (status and headers).
    """
    body = json.dumps(stateless_call(execution, number)).encode()
    fields = {**ACCEPT, "MCP-Protocol-Version": ERAS[1], **STATELESS_CALL, "Host": f"127.0.0.1:{PORT}"}
    headers = [(name.lower().encode(), value.encode()) for name, value in fields.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", PORT),
        "state": {},
    }
    delivered = False
    never = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent[1:])
    if sent[0]["status"] != 200 or b'"isError":false' not in answer or execution.encode() not in answer:
        raise RuntimeError(f"call {number} failed: {sent[0]['status']} {answer[:300]!r}")
    return sent[0]


@contextmanager
def shape(app: Any, name: str) -> Iterator[None]:
    """testgate's application in the shape ``name``, for the duration of the block."""
    from testgate.operations import dispatch

    lane = app.lanes[0]
    whole, audited = lane.app, dispatch._audit_success

    async def unaudited(*args: Any, **kwargs: Any) -> None:
        return None

    if name in ("no front door", "neither"):
        lane.app = lane.mount.app
    if name in ("no audit event", "neither"):
        dispatch._audit_success = unaudited  # type: ignore[assignment]
    try:
        yield
    finally:
        lane.app, dispatch._audit_success = whole, audited


SHAPES = ("whole", "no front door", "no audit event", "neither")


async def measure(
    data_dir: Path, token: str, execution: str, calls: int, rounds: int, database_url: str | None = None
) -> dict[str, float]:
    """Median CPU microseconds per call of the store baseline and of each of testgate's shapes."""
    testgate, store = guarded_app(data_dir, PORT, database_url), store_app(data_dir, database_url)
    stops = [await _lifespan(testgate), await _lifespan(store)]
    mcp = f"/organizations/{ORG}/environments/{ENV}/mcp"
    runs: list[tuple[str, ASGIApp, str, str | None]] = [("store", store, "/mcp", None)]
    runs += [(name, testgate, mcp, token) for name in SHAPES]
    taken: dict[str, list[float]] = {name: [] for name, *_ in runs}
    number = 0
    try:
        for turn in range(rounds + 1):  # the first turn warms up
            for name, app, path, bearer in runs:
                with shape(testgate, name if name != "store" else "whole"):
                    gc.collect()
                    began = time.process_time()
                    for _ in range(calls):
                        number += 1
                        await call(app, path, bearer, execution, number)
                    if turn:
                        taken[name].append((time.process_time() - began) / calls * 1e6)
    finally:
        for stop in stops:
            await stop()
    return {name: statistics.median(values) for name, values in taken.items()}


def tables(values: dict[str, float], unit: str) -> list[str]:
    """The shapes' table and the parts' table (markdown lines) for ``values`` per shape, in ``unit`` per call."""
    store, whole = values["store"], values["whole"]
    parts = [
        ("the front door's layers", whole - values["no front door"]),
        ("the audit event (built, chained, committed before the answer)", whole - values["no audit event"]),
        ("the Guard, dispatch (scope, validation, RBAC) and the tool glue", values["neither"] - store),
    ]
    lines = [f"| shape | {unit} per call | vs store |", "|---|---:|---:|"]
    for name in ("store", *SHAPES):
        label = "store baseline" if name == "store" else f"testgate, {name}"
        lines.append(f"| {label} | {values[name]:,.0f} | {values[name] - store:+,.0f} |")
    lines += ["", f"| part | {unit} per call | share of testgate's extra |", "|---|---:|---:|"]
    extra = whole - store
    for label, cost in parts:
        lines.append(f"| {label} | {cost:,.0f} | {cost / extra:.0%} |")
    return lines


def report(medians: dict[str, float], calls: int, rounds: int, store_kind: str) -> str:
    command = " ".join(["python -m bench.mcp_breakdown", *sys.argv[1:]])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`",
        f"on {machine()}; store: {store_kind}; {rounds} rounds of {calls} calls per shape, medians.",
        "",
        *tables(medians, "CPU µs"),
        "",
        f"testgate/store by CPU per call: {medians['store'] / medians['whole']:.2f}x (the parts overlap a little, "
        "so they need not add up).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls per shape and round")
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds (after one warm-up round)")
    parser.add_argument("--write", metavar="MARKDOWN", help="put the results into this file's generated block")
    parser.add_argument("--database-url", metavar="URL", help="a PostgreSQL database instead of a SQLite file")
    args = parser.parse_args()
    url = args.database_url
    with tempfile.TemporaryDirectory(prefix="mcp-breakdown-") as tmp:
        data_dir = Path(tmp) / "testgate"
        token, execution = asyncio.run(_prepare(data_dir, url))
        medians = asyncio.run(measure(data_dir, token, execution, args.calls, args.rounds, url))
    text = report(medians, args.calls, args.rounds, "PostgreSQL" if url else "a SQLite file (WAL)")
    print(text)
    if args.write:
        markers = (BEGIN_PG, END_PG) if url else (BEGIN, END)
        write_section(Path(args.write), text, markers, "## Where an MCP call's time goes")


if __name__ == "__main__":
    main()
