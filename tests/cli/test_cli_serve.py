"""``testgate serve``: settings from the environment and options, the endpoints, the first-start link."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
import typer

from testgate.cli.serve import announce_setup_link, endpoints, server_settings


def test_options_take_precedence_over_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TESTGATE_PORT", "9000")
    monkeypatch.setenv("TESTGATE_HOST", "0.0.0.0")

    settings = server_settings(tmp_path, None, 9100)

    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 9100, tmp_path)


def test_the_endpoints_name_the_default_environments_mcp_url(tmp_path: Path) -> None:
    settings = server_settings(tmp_path, "127.0.0.1", 8080)

    urls = dict(endpoints(settings))

    assert urls["REST API"] == "http://127.0.0.1:8080/api/v1/organizations/default/environments/dev/workflows"
    assert urls["MCP"] == "http://127.0.0.1:8080/organizations/default/environments/dev/mcp"
    assert urls["console"] == "http://127.0.0.1:8080/ui"


def test_the_setup_link_event_is_shown_boxed_instead_of_logged(capsys) -> None:
    link = "http://127.0.0.1:8080/setup?token=" + "x" * 43
    event = {"event": "no owner yet", "logger": "testgate.app", "link": link}

    with pytest.raises(structlog.DropEvent):
        announce_setup_link(None, "warning", event)

    shown = capsys.readouterr().err
    assert link in shown  # on one line, whole
    assert "first owner" in shown


def test_other_events_pass_through() -> None:
    event = {"event": "request", "logger": "testgate.http", "link": "http://example"}

    assert announce_setup_link(None, "info", event) is event


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Started:
    """A ``testgate serve`` process up to "Application startup complete": what it printed until then (``seen``,
    its last line ``started_line``), and once stopped with Ctrl-C, the rest and its exit code."""

    seen: str = ""
    started_line: str = ""
    rest: str = ""
    returncode: int | None = None


@contextmanager
def _started(tmp_path: Path, *options: str) -> Iterator[Started]:
    env = {**os.environ, "TESTGATE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "testgate", "serve", *options]
    started = Started()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        guard = threading.Timer(30, proc.kill)  # bounds the test if startup never completes
        guard.start()
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                started.seen += line
                if "Application startup complete" in line:
                    started.started_line = line
                    break
            yield started
        finally:
            proc.send_signal(signal.SIGINT)
            _, started.rest = proc.communicate(timeout=30)
            started.returncode = proc.returncode
            guard.cancel()


def test_the_first_start_prints_the_endpoints_and_a_one_time_owner_link(tmp_path: Path) -> None:
    # The process boundary is the subject: what a person sees when they start the server, and what it logs.
    port = _free_port()
    planted = "planted-query-secret-" + "q" * 20
    with _started(tmp_path, "--port", str(port)) as server:
        base = f"http://127.0.0.1:{port}"
        answers = [
            httpx.get(f"{base}/setup?token={planted}"),  # a (wrong) one-time setup token
            httpx.get(f"{base}/api/v1/docs?code={planted}"),  # a query as an OAuth code comes
            httpx.get(f"{base}/"),  # the server's address, as a person opens it
        ]
    seen, started_line, rest = server.seen, server.started_line, server.rest

    assert f"http://127.0.0.1:{port}/organizations/default/environments/dev/mcp" in seen
    assert f"http://127.0.0.1:{port}/setup?token=" in seen
    assert "first owner" in seen
    assert server.returncode == 0
    # OWASP ASVS 4.0.3 V7.1.1 (no credentials in logs): uvicorn's own lines go through testgate's log pipeline
    # (JSON, secrets redacted), not a handler of uvicorn's default logging config, which prints them as they are.
    assert started_line.startswith("{"), f"uvicorn's line bypassed testgate's log pipeline: {started_line!r}"
    started = json.loads(started_line)
    assert (started["logger"], started["event"]) == ("uvicorn.error", "Application startup complete.")
    # ASVS V7.1.1 again, and SECURITY.md's "access log (no query strings)": a query may carry a credential, so
    # every request is logged once, by testgate's access log, with its path alone (uvicorn's access log, which
    # writes the request line whole, stays off).
    assert f"{base}/ui" in seen
    assert [answer.status_code for answer in answers] == [400, 200, 303]
    assert answers[2].headers["location"] == "/ui"
    assert planted not in rest, [line for line in rest.splitlines() if planted in line]
    requests = [json.loads(line) for line in rest.splitlines() if '"event": "request"' in line]
    assert [(r["logger"], r["path"]) for r in requests if r["path"] in ("/setup", "/api/v1/docs")] == [
        ("testgate.http", "/setup"),
        ("testgate.http", "/api/v1/docs"),
    ]


def test_a_port_in_use_ends_the_command_at_once_before_anything_is_set_up(tmp_path: Path) -> None:
    # It hung for good on the embedded database (uvicorn failed to bind after the lifespan had started), and
    # each attempt replaced the running server's one-time setup link with one of its own.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "TESTGATE_DATA_DIR": str(tmp_path / "data")}
        command = [sys.executable, "-m", "testgate", "serve", "--port", str(port)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 1
    assert f"error: cannot listen on 127.0.0.1 port {port}: the port is in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # no database, no setup link


def test_port_zero_announces_the_port_the_system_chose(tmp_path: Path) -> None:
    with _started(tmp_path, "--port", "0") as server:
        [port] = {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)/", server.seen)}
        metadata = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server").json()

    assert port != 0
    assert metadata["issuer"] == f"http://127.0.0.1:{port}"


def _testgate(arguments: list[str], **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")} | variables
    command = [sys.executable, "-m", "testgate", *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _serve(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}
    env |= {"TESTGATE_DATA_DIR": str(tmp_path / "data"), **variables}
    command = [sys.executable, "-m", "testgate", "serve", "--port", "0"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_database_it_cannot_reach_ends_the_command_with_one_line(tmp_path: Path) -> None:
    # It was a 15 KB JSON traceback from the lifespan, exit 3.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens there once this socket closes
    done = _serve(tmp_path, TESTGATE_DATABASE_URL=f"postgresql://tg:hunter2@127.0.0.1:{port}/testgate")

    assert done.returncode == 1
    assert f"error: cannot use the database at postgresql://tg:***@127.0.0.1:{port}/testgate: " in done.stderr
    assert "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.postgres
async def test_a_replica_without_the_key_encryption_secret_refuses_to_start(tmp_path: Path) -> None:
    """Started, it reported ready and answered every OAuth token request with a 500."""
    from tests.conftest import _drop_postgres_database, _postgres_database

    from testgate.oauth import keys
    from testgate.oauth.settings import OAuthSettings
    from testgate.store.db import Database, create_engine
    from testgate.store.migrate import upgrade

    url = await _postgres_database()
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with Database(engine).session() as session:
            await keys.rotate(session, OAuthSettings(key_encryption_secret="the-first-replicas-secret"))  # type: ignore[arg-type]
        await engine.dispose()
        without = _serve(tmp_path, TESTGATE_DATABASE_URL=url)
        other = _serve(tmp_path, TESTGATE_DATABASE_URL=url, TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET="another-secret")
        # Changing the secret on purpose: a new signing key under it, then the replicas start again.
        rotated = _testgate(
            ["db", "rotate-signing-key"],
            TESTGATE_DATABASE_URL=url,
            TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET="another-secret",
        )
        from testgate.cli.serve import preflight
        from testgate.config import Settings

        changed = Settings(
            data_dir=tmp_path / "data",
            database_url=url,
            oauth=OAuthSettings(key_encryption_secret="another-secret"),  # type: ignore[arg-type]
        )
        await asyncio.to_thread(preflight, changed)  # returns: no exit
    finally:
        await _drop_postgres_database(url)

    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("signing key ")
    assert "(encrypted)" in rotated.stdout

    for done, why in (
        (without, "is encrypted, and this server has no secret to decrypt it"),
        (other, "was encrypted with a different secret"),
    ):
        said = " ".join(done.stderr.split())
        assert done.returncode == 2, done.stderr
        assert f"TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET: the OAuth signing key in the database {why}" in said
        assert "every replica needs the same secret (to change it: `testgate db rotate-signing-key`)" in said
        assert "Traceback" not in done.stderr


def test_an_artifact_directory_it_cannot_write_stops_the_start(tmp_path: Path) -> None:
    # It started, and every run passed with no artifact kept and a message blaming the workspace's files.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    done = _serve(tmp_path, TESTGATE_ARTIFACTS__PATH=str(blocked / "artifacts"))

    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert f"TESTGATE_ARTIFACTS__PATH: the artifact directory {blocked / 'artifacts'} (Not a directory) cannot" in said
    assert "Traceback" not in done.stderr


def test_a_metrics_port_in_use_ends_the_command_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, TESTGATE_HTTP__METRICS_LISTEN=f"127.0.0.1:{port}")

    assert done.returncode == 1
    said = f"cannot listen for metrics (TESTGATE_HTTP__METRICS_LISTEN) on 127.0.0.1 port {port}: the port is in use"
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_the_preflight_lets_a_database_behind_head_through_for_the_lifespan_to_migrate(tmp_path: Path) -> None:
    # It read the signing keys' table through the current model first: an install from before the OAuth
    # migration could no longer be started (and so upgraded) at all.
    import asyncio

    from testgate.cli.serve import preflight
    from testgate.config import Settings
    from testgate.store.db import create_engine
    from testgate.store.migrate import upgrade

    settings = Settings(data_dir=tmp_path / "data")

    async def old() -> None:
        engine = create_engine(settings.effective_database_url)
        await upgrade(engine, "75956cdf23d8")  # tokens and members, before OAuth
        await engine.dispose()

    asyncio.run(old())
    preflight(settings)  # returns: no exit


def test_a_host_name_is_listened_on_at_every_address_it_names_on_one_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # One socket for the name's first address (IPv4) left clients resolving localhost to ::1 refused.
    from testgate.cli import serve

    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("this machine has no IPv6 loopback")
    both = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
    ]
    monkeypatch.setattr(serve.socket, "getaddrinfo", lambda *args, **kwargs: both)
    sockets = serve.listen("localhost", 0)
    try:
        bound = [(sock.family, sock.getsockname()[0]) for sock in sockets]
        ports = {sock.getsockname()[1] for sock in sockets}
    finally:
        for sock in sockets:
            sock.close()

    assert bound == [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    assert len(ports) == 1


def test_an_address_the_machine_lacks_is_passed_over_when_another_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name listing ::1 where IPv6 is off (or any address not on this machine) stopped the start.
    from testgate.cli import serve

    addresses = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::7", 0, 0, 0)),  # documentation prefix: not here
    ]
    monkeypatch.setattr(serve.socket, "getaddrinfo", lambda *args, **kwargs: addresses)
    sockets = serve.listen("tg.internal", 0)
    bound = [sock.getsockname()[0] for sock in sockets]
    for sock in sockets:
        sock.close()
    assert bound == ["127.0.0.1"]

    monkeypatch.setattr(serve.socket, "getaddrinfo", lambda *args, **kwargs: addresses[1:])
    with pytest.raises(typer.Exit):
        serve.listen("tg.internal", 0)


def test_the_preflight_makes_the_data_directory_owner_only(tmp_path: Path) -> None:
    # It made data_dir/artifacts with parents=True: the data directory came out 0755 under umask 022.
    from testgate.cli.serve import preflight
    from testgate.config import Settings

    old = os.umask(0o022)
    try:
        preflight(Settings(data_dir=tmp_path / "data"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / "artifacts").stat().st_mode) == 0o700


def test_a_stopping_server_gives_open_requests_a_bounded_grace(tmp_path: Path) -> None:
    # A long poll (up to 900 s) or a followed log held a stopping replica open until it ended.
    from testgate.cli.serve import uvicorn_options
    from testgate.config import Settings

    default = uvicorn_options(Settings(data_dir=tmp_path))
    chosen = uvicorn_options(Settings(data_dir=tmp_path, http={"shutdown_grace": 5}))

    assert default["timeout_graceful_shutdown"] == 30
    assert chosen["timeout_graceful_shutdown"] == 5


def test_with_json_logs_every_line_a_starting_server_writes_is_one_json_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A log shipper reads one JSON object per line: the banner and the setup link box were plain text.
    port = _free_port()
    monkeypatch.setenv("TESTGATE_LOG_FORMAT", "json")
    with _started(tmp_path, "--port", str(port)) as server:
        pass
    lines = [json.loads(line) for line in server.seen.splitlines() if line.strip()]  # raises on any other line

    started = next(line for line in lines if line["event"] == "testgate started")
    assert started["endpoints"]["MCP"] == f"http://127.0.0.1:{port}/organizations/default/environments/dev/mcp"
    link = next(line for line in lines if "first owner" in line["event"])
    assert link["link"].startswith(f"http://127.0.0.1:{port}/setup?token=")
