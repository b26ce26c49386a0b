"""MCP tool-call throughput: testgate's full stack against two bare ``MCPServer`` baselines, side by side, with wrk.

    .venv/bin/python -m bench.mcp_throughput [--duration 10] [--connections 1,16,64] [--write docs/performance.md]
        [--database-url postgresql+asyncpg://user@host/empty_database]

One run starts three servers as subprocesses on free loopback ports, with the same uvicorn settings:

- testgate: ``create_app`` on a fresh SQLite data directory (or the PostgreSQL database of
  ``--database-url``) - bearer token verification, environment check, RBAC, dispatch, audit event -
  answering ``get_execution`` for a finished execution, called with a member token holding ``read`` in
  the environment;
- store: an ``mcp`` ``MCPServer`` whose ``get_execution`` runs testgate's own handler (the same reads of
  the same database) with no authentication, authorization or audit: the equivalent tool without
  security, so testgate/store is the price of authentication, RBAC and audit;
- bare: an ``MCPServer`` whose ``get_execution`` returns the very dict testgate answered, with no
  database at all: the ceiling of the SDK and uvicorn on this machine.

All use the SDK's default response mode (``json_response=False``: SSE answers to 2025-era POSTs). For
each protocol era (2025-11-25 with one session per connection, opened beforehand; 2026-07-28 stateless)
and each connection count, wrk (``bench/mcp_call.lua``) warms each server up and then runs short measured
rounds, the servers taking turns round by round (``--rounds``), so a slow spell of a shared machine falls
on all of them alike. Every request carries its own JSON-RPC id and every answer is checked; a round with
a failed check is reported, not hidden. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform as host
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

ORG, ENV = "bench", "dev"
ERAS = ("2025-11-25", "2026-07-28")
SERVERS = ("bare", "store", "testgate")
LUA = Path(__file__).with_name("mcp_call.lua")
WORKFLOW = "kind: TestWorkflow\nmetadata: {name: smoke}\nspec:\n  steps:\n    - {name: unit, shell: 'echo ok'}\n"
UVICORN: dict[str, Any] = {
    "host": "127.0.0.1",
    "log_config": None,
    "log_level": "warning",
    "access_log": False,
    "server_header": False,
}
UNLIMITED = "1000000/minute"
STALL_LIMIT = 120.0  # seconds a server may take to answer again after a round before it is restarted
BEGIN, END = "<!-- mcp-throughput:begin -->", "<!-- mcp-throughput:end -->"
BEGIN_PG, END_PG = "<!-- mcp-throughput-postgresql:begin -->", "<!-- mcp-throughput-postgresql:end -->"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


# --- the servers (run in child processes) ----------------------------------------------------------


def guarded_app(data_dir: Path, port: int, database_url: str | None = None) -> Any:
    """testgate's whole application on ``data_dir`` (or ``database_url``), with rate limits that count but
    never refuse."""
    from testgate import logconfig
    from testgate.app import create_app
    from testgate.config import Settings

    # The rate limiter runs on every request but never refuses one: the load is the point here.
    unlimited = {"rate_limit": UNLIMITED, "rate_limit_address": UNLIMITED}
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        host="127.0.0.1",
        port=port,
        default_organization=ORG,
        log_level="WARNING",
        http=unlimited,
    )
    logconfig.configure("json", settings.log_level)
    return create_app(settings)


def _serve_testgate(port: int, data_dir: Path, database_url: str | None) -> None:
    import uvicorn

    uvicorn.run(guarded_app(data_dir, port, database_url), port=port, **UVICORN)


def _serve_bare(port: int, detail_file: Path) -> None:
    import uvicorn
    from mcp.server.mcpserver import MCPServer

    detail: dict[str, Any] = json.loads(detail_file.read_text())
    logging.basicConfig(level=logging.WARNING)
    server = MCPServer("bare", log_level="WARNING")

    @server.tool(name="get_execution")
    def get_execution(id: str) -> dict[str, Any]:
        """Get one execution (a fixed answer)."""
        return detail

    uvicorn.run(server.streamable_http_app(json_response=False), port=port, **UVICORN)


def store_app(data_dir: Path, database_url: str | None = None) -> Any:
    """An ``MCPServer`` whose ``get_execution`` runs testgate's own handler on the same store, unguarded."""
    from mcp.server.mcpserver import MCPServer

    from testgate.access.principal import Principal, Role
    from testgate.config import Settings
    from testgate.operations.context import Call, OpContext
    from testgate.operations.executions import ExecutionIn, get_execution
    from testgate.platform import tenancy
    from testgate.platform.context import Platform
    from testgate.store.db import Database, create_engine

    logging.basicConfig(level=logging.WARNING)
    settings = Settings(data_dir=data_dir, database_url=database_url, default_organization=ORG, log_level="WARNING")
    platform = Platform(settings=settings, db=Database(create_engine(settings.effective_database_url)))
    nobody = Principal("local", "bench", "bench", "", Role.ADMIN)
    scope: dict[str, Any] = {}
    server = MCPServer("store", log_level="WARNING")

    @server.tool(name="get_execution")
    async def get_execution_tool(id: str) -> dict[str, Any]:
        """Get one execution from the store (no authentication, authorization or audit)."""
        async with platform.db.session(write=False) as session:
            if not scope:
                org = await tenancy.organization_by_slug(session, ORG)
                scope.update(org=org, env=await tenancy.environment_by_slug(session, org, ENV))
            ctx = OpContext(platform, Call(nobody, ORG, ENV), scope["org"], scope["env"], session)
            found = await get_execution.handler(ctx, ExecutionIn(id=id))
        return found.model_dump(mode="json")

    app = server.streamable_http_app(json_response=False)
    serving = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with serving(app) as state:
            yield state
        await platform.db.dispose()  # the store's connections, in a process that goes on (bench.mcp_breakdown)

    app.router.lifespan_context = lifespan
    return app


def _serve_store(port: int, data_dir: Path, database_url: str | None) -> None:
    import uvicorn

    uvicorn.run(store_app(data_dir, database_url), port=port, **UVICORN)


# --- setup ---------------------------------------------------------------------------------------


async def _prepare(data_dir: Path, database_url: str | None = None) -> tuple[str, str]:
    """A store with one finished execution and a read token for it: (token, execution id)."""
    from testgate.access import tokens
    from testgate.access.principal import Permission, Role
    from testgate.config import Settings
    from testgate.platform import executions, tenancy, workflows
    from testgate.platform.context import Platform
    from testgate.platform.executions import TERMINAL
    from testgate.runner.local import LocalExecutor
    from testgate.store.db import Database, create_engine
    from testgate.store.migrate import upgrade

    settings = Settings(data_dir=data_dir, database_url=database_url, default_organization=ORG)
    db = Database(create_engine(settings.effective_database_url))
    await upgrade(db.engine)
    platform = Platform(settings=settings, db=db)
    async with db.session() as session:
        boot = await tenancy.bootstrap(session, ORG, ENV, issue_setup_token=False)
        saved = await workflows.save(session, boot.environment, WORKFLOW, max_bytes=65536, mode="apply")
        created = await executions.create(session, boot.environment, saved.row, config={}, tags={}, created_by="bench")
        issued = await tokens.issue(
            session,
            organization_id=boot.organization.id,
            name="bench",
            role=Role.MEMBER,
            grants={boot.environment.id: Permission.READ},
            created_by=None,
            expires_at=None,
        )
    executor = LocalExecutor(platform)
    await executor.start()
    await executor.submit(created.row.id, created.secrets)
    deadline = time.monotonic() + 60
    while True:
        async with db.session() as session:
            row = await executions.get(session, boot.environment, created.row.id)
        if row.status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the setup execution did not finish: {row.status}")
        await asyncio.sleep(0.05)
    await executor.close()
    await db.dispose()
    return issued.secret, created.row.id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server in its own process (restartable on the same port), and where to reach its MCP endpoint."""

    name: str
    argv: list[str]
    url: str
    token: str | None
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, env=env, stdout=out, stderr=out, cwd=Path(__file__).parents[1])
        self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {timeout:g} s; see {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()


def _start(name: str, path: str, token: str | None, root: Path, *extra: str) -> Server:
    port = _free_port()
    argv = [sys.executable, "-m", "bench.mcp_throughput", "--serve", name, "--port", str(port), *extra]
    server = Server(name, argv, f"http://127.0.0.1:{port}{path}", token, root / f"{name}.log")
    server.start()
    return server


# --- MCP over plain HTTP -------------------------------------------------------------------------


def _headers(server: Server, era: str, session: str | None = None) -> dict[str, str]:
    headers = {**ACCEPT, "MCP-Protocol-Version": era}
    if server.token:
        headers["Authorization"] = f"Bearer {server.token}"
    if session:
        headers["Mcp-Session-Id"] = session
    return headers


def _message(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or a single-event SSE answer."""
    response.raise_for_status()
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1]))
    return dict(response.json())


def _open_sessions(server: Server, count: int) -> list[str]:
    """``count`` 2025-11-25 sessions, initialized, ready for tool calls."""
    sessions = []
    with httpx.Client(timeout=10) as client:
        for _ in range(count):
            init = {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": ERAS[0],
                    "capabilities": {},
                    "clientInfo": {"name": "wrk", "version": "0"},
                },
            }
            response = client.post(server.url, json=init, headers=_headers(server, ERAS[0]))
            _message(response)
            session = response.headers["mcp-session-id"]
            done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            client.post(server.url, json=done, headers=_headers(server, ERAS[0], session)).raise_for_status()
            sessions.append(session)
    return sessions


# The headers a stateless 2026-07-28 ``tools/call`` of ``get_execution`` carries besides Accept and the era.
STATELESS_CALL = {"Mcp-Method": "tools/call", "Mcp-Name": "get_execution"}


def stateless_call(execution: str, number: int = 1) -> dict[str, Any]:
    """The JSON-RPC request of a stateless 2026-07-28 ``tools/call`` of ``get_execution`` (id ``number``)."""
    meta = {"io.modelcontextprotocol/protocolVersion": ERAS[1], "io.modelcontextprotocol/clientCapabilities": {}}
    params = {"name": "get_execution", "arguments": {"id": execution}, "_meta": meta}
    return {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}


def _get_execution(server: Server, execution: str, timeout: float = 10) -> dict[str, Any]:
    """One stateless 2026-07-28 call of ``get_execution``: its structured result."""
    call = stateless_call(execution)
    headers = {**_headers(server, ERAS[1]), **STATELESS_CALL}
    result = _message(httpx.post(server.url, json=call, headers=headers, timeout=timeout))["result"]
    if result.get("isError"):
        raise RuntimeError(f"get_execution failed on {server.name}: {result}")
    return dict(result["structuredContent"])


# --- load ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """One measured wrk round (or several combined)."""

    p50_ms: float
    p99_ms: float
    requests: int
    failed: int
    sample: str
    good: int  # calls answered correctly
    seconds: float

    @property
    def calls_per_second(self) -> float:
        return self.good / self.seconds


Results = dict[tuple[str, int, str], Round]
Stalls = dict[tuple[str, int, str], float | None]
Spreads = dict[tuple[str, int], list[float]]  # testgate/store of each round and the store's round next to it


def _wrk(server: Server, era: str, execution: str, connections: int, seconds: float, sessions: Path | None) -> Round:
    # wrk takes whole seconds; a round's rate is over the time wrk actually ran (``Round.seconds``).
    threads = 1  # one wrk thread keeps up at these rates and leaves the other core to the server
    length = f"-d{max(1, round(seconds))}s"
    argv = ["wrk", f"-t{threads}", f"-c{connections}", length, "--timeout", "10s", "-s", str(LUA)]
    argv += [server.url, "--", era, server.token or "-", str(sessions) if sessions else "-", execution, str(threads)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith('{"requests"'))
    stats = json.loads(line)
    failed = stats["bad"] + stats["socket_errors"]
    good, elapsed = stats["requests"] - stats["bad"], stats["duration_us"] / 1e6
    return Round(
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=stats["requests"],
        failed=failed,
        sample=stats["sample"],
        good=good,
        seconds=elapsed,
    )


def _sessions_file(root: Path, server: Server, count: int) -> Path:
    path = root / f"{server.name}-sessions.txt"
    path.write_text("\n".join(_open_sessions(server, count)) + "\n")
    return path


def settle(server: Server, execution: str, limit: float = STALL_LIMIT) -> float | None:
    """Seconds until ``server`` answers a call successfully, or None if it did not within ``limit``.

    Patient calls, not short probes: a probe that gives up hangs up mid-call itself. A call that is
    answered with an error (HTTP 5xx, ``isError``) is repeated.
    """
    began = time.monotonic()
    while (left := limit - (time.monotonic() - began)) > 0:
        try:
            _get_execution(server, execution, timeout=left)
            return time.monotonic() - began
        except (httpx.HTTPStatusError, RuntimeError):
            continue
        except httpx.TimeoutException:
            break
    return None


@dataclass
class Bench:
    """The servers under load, the execution they serve, and each server's 2025-era sessions."""

    servers: dict[str, Server]
    execution: str
    root: Path
    sessions: dict[str, Path] = field(default_factory=dict)

    def open_sessions(self, name: str, count: int) -> None:
        self.sessions[name] = _sessions_file(self.root, self.servers[name], count)

    def round(self, name: str, era: str, connections: int, seconds: float) -> Round:
        """One wrk round against one server (over this server's sessions in the 2025 era)."""
        file = self.sessions[name] if era == ERAS[0] else None
        return _wrk(self.servers[name], era, self.execution, connections, seconds, file)

    def recover(self, name: str, count: int) -> float | None:
        """Wait for the server to answer again; restart it (new sessions) when it does not within the limit."""
        waited = settle(self.servers[name], self.execution)
        if waited is None:
            self.servers[name].restart()
            self.open_sessions(name, count)
        return waited


def measure(
    bench: Bench, levels: list[int], seconds: float, warmup: float, rounds: int
) -> tuple[Results, Stalls, Spreads]:
    """Every (era, connections) configuration: a warm-up per server, then ``rounds`` short rounds per server,
    servers taking turns round by round, so that a slow spell of this shared machine falls on all of them
    alike; also how long each server stalled after its rounds (the worst), and testgate/store round by
    round (how far this machine's noise moves the ratio within one run)."""
    for name in bench.servers:
        bench.open_sessions(name, max(levels))
    results: Results = {}
    stalls: Stalls = {}
    spreads: Spreads = {}
    for era in ERAS:
        for connections in levels:
            for name in bench.servers:
                bench.recover(name, max(levels))
                bench.round(name, era, connections, warmup)
            taken: dict[str, list[Round]] = {name: [] for name in bench.servers}
            waits: dict[str, list[float | None]] = {name: [] for name in bench.servers}
            for _ in range(rounds):
                for name in bench.servers:
                    # wrk hangs up on the calls still in flight when it stops; let the server get over that first.
                    bench.recover(name, max(levels))
                    taken[name].append(bench.round(name, era, connections, seconds / rounds))
                    waits[name].append(bench.recover(name, max(levels)))
            pairs = zip(taken["testgate"], taken["store"], strict=True)
            spreads[(era, connections)] = [ours.calls_per_second / theirs.calls_per_second for ours, theirs in pairs]
            for name in bench.servers:
                key = (era, connections, name)
                result = results[key] = combined(taken[name])
                stalls[key] = None if None in waits[name] else max(w for w in waits[name] if w is not None)
                stalled = "no answer, restarted" if stalls[key] is None else f"{stalls[key]:.1f} s"
                print(
                    f"{era} c={connections:<3} {name:<8} {result.calls_per_second:8.0f}/s "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms  "
                    f"failed {result.failed}/{result.requests}  stall after: {stalled}",
                    flush=True,
                )
    return results, stalls, spreads


def combined(rounds: list[Round]) -> Round:
    """One server's rounds of one configuration as one: calls over the whole time, the median round's p50,
    the worst round's p99 (percentiles of separate rounds do not add up; these bound them honestly)."""
    return Round(
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=max(r.p99_ms for r in rounds),
        requests=sum(r.requests for r in rounds),
        failed=sum(r.failed for r in rounds),
        sample=next((r.sample for r in rounds if r.sample), ""),
        good=sum(r.good for r in rounds),
        seconds=sum(r.seconds for r in rounds),
    )


# --- report --------------------------------------------------------------------------------------


def machine() -> str:
    """CPU model and count, load, OS, Python, mcp, uvicorn, wrk."""
    from importlib.metadata import version

    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    wrk = "no wrk"
    if shutil.which("wrk"):
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split(" [")[0]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}; load average {load} at the start), {host.system()} {host.release()}, "
        f"Python {host.python_version()}, mcp {version('mcp')}, uvicorn {version('uvicorn')}, {wrk.strip()}"
    )


def _stall(seconds: float | None) -> str:
    return f"no answer in {STALL_LIMIT:g} s, restarted" if seconds is None else f"{seconds:.0f} s"


def table(results: Results, stalls: Stalls, spreads: Spreads, levels: list[int]) -> str:
    """The results as a markdown table: one row per era and connection count."""
    rows = [
        "| era | conn. | bare calls/s | store calls/s | testgate calls/s | testgate/store | by round "
        "| testgate/bare | bare p50 / p99 ms | store p50 / p99 ms | testgate p50 / p99 ms | testgate failed calls "
        "| testgate stall after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for era in ERAS:
        for connections in levels:
            key = (era, connections, "testgate")
            bare, store, full = (results[(era, connections, name)] for name in ("bare", "store", "testgate"))
            rows.append(
                f"| {era} | {connections} | {bare.calls_per_second:,.0f} | {store.calls_per_second:,.0f} "
                f"| {full.calls_per_second:,.0f} | {full.calls_per_second / store.calls_per_second:.2f}x "
                f"| {_spread(spreads[(era, connections)])} | {full.calls_per_second / bare.calls_per_second:.2f}x "
                f"| {bare.p50_ms:.1f} / {bare.p99_ms:.1f} "
                f"| {store.p50_ms:.1f} / {store.p99_ms:.1f} | {full.p50_ms:.1f} / {full.p99_ms:.1f} "
                f"| {full.failed} of {full.requests} | {_stall(stalls[key])} |"
            )
    return "\n".join(rows)


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}x"


def report(results: Results, stalls: Stalls, spreads: Spreads, levels: list[int], started: str) -> str:
    """The generated block for docs/performance.md: when, how, where, the table, what failed."""
    command = "python -m bench.mcp_throughput " + " ".join(sys.argv[1:])
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command.strip()}`",
        f"on {started}.",
        "",
        table(results, stalls, spreads, levels),
    ]
    samples = {r.sample for r in results.values() if r.sample}
    if any(r.failed for r in results.values()):
        lines += ["", "calls/s counts successful calls only. A failed call, for example:"]
        lines += [f"`{sample[:200]}`" for sample in sorted(samples)[:2]]
    lines += [
        "",
        "Each server's measured time is split into rounds, the servers taking turns round by round. calls/s: the",
        "successful calls of all rounds over their total time; by round: the lowest and highest testgate/store",
        "of a testgate round and the store's round next to it; p50: the median round's; p99: the worst round's.",
        "Stall after: the longest testgate took to answer a single call again once wrk had stopped (and hung up",
        f"on the calls in flight); a server silent for {STALL_LIMIT:g} s is restarted. Each round starts after",
        "the server answers again.",
    ]
    if any(r.failed for (_, _, name), r in results.items() if name != "testgate"):
        lines += ["", "A baseline server failed calls too: its numbers are not a valid baseline."]
    return "\n".join(lines)


def write_section(
    path: Path, block: str, markers: tuple[str, str] = (BEGIN, END), heading: str = "## MCP throughput"
) -> None:
    """Replace the generated block between ``markers`` in ``path`` (appending a section if it has none)."""
    begin, end = markers
    text = path.read_text() if path.exists() else "# Performance\n"
    generated = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        before, rest = text.split(begin, 1)
        text = before + generated + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{generated}\n"
    path.write_text(text)


# --- main ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    levels = [int(level) for level in args.connections.split(",")]
    url = args.database_url
    # the load average before this run adds its own
    started = f"{machine()}; store: " + (f"PostgreSQL at {make_url(url).host}" if url else "a SQLite file (WAL)")
    with tempfile.TemporaryDirectory(prefix="mcp-throughput-") as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        token, execution = asyncio.run(_prepare(root / "testgate", url))
        store = ["--data-dir", str(root / "testgate"), *(["--database-url", url] if url else [])]
        servers = {}
        try:
            path = f"/organizations/{ORG}/environments/{ENV}/mcp"
            servers["testgate"] = _start("testgate", path, token, root, *store)
            detail = root / "detail.json"
            detail.write_text(json.dumps(_get_execution(servers["testgate"], execution)))
            servers["bare"] = _start("bare", "/mcp", None, root, "--detail", str(detail))
            assert _get_execution(servers["bare"], execution)["id"] == execution
            servers["store"] = _start("store", "/mcp", None, root, *store)
            assert _get_execution(servers["store"], execution)["id"] == execution
            bench = Bench({name: servers[name] for name in SERVERS}, execution, root)
            results, stalls, spreads = measure(bench, levels, args.duration, args.warmup, args.rounds)
        finally:
            for server in servers.values():
                server.stop()
    text = report(results, stalls, spreads, levels, started)
    print("\n" + text)
    if args.write:
        if url:
            write_section(Path(args.write), text, (BEGIN_PG, END_PG), "### On PostgreSQL")
        else:
            write_section(Path(args.write), text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per server and configuration")
    parser.add_argument("--rounds", type=int, default=5, help="turns the measured seconds are split into")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each round")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--keep", metavar="DIR", help="keep the servers' data and logs in this (new) directory")
    parser.add_argument("--write", metavar="MARKDOWN", help="put the results into this file's generated block")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="a PostgreSQL database for testgate and the store baseline (postgresql+asyncpg://...; it is "
        "migrated and given a workflow, an execution and a token), instead of a fresh SQLite file",
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--detail", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "testgate":
        _serve_testgate(args.port, args.data_dir, args.database_url)
    elif args.serve == "store":
        _serve_store(args.port, args.data_dir, args.database_url)
    elif args.serve == "bare":
        _serve_bare(args.port, args.detail)
    else:
        run(args)


if __name__ == "__main__":
    main()
