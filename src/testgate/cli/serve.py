"""``testgate serve``: the control plane over HTTP (REST API, MCP endpoints, console) on uvicorn.

Settings are read once, from the environment and these options, and handed to ``create_app``. On the
first start the app's lifespan creates the default organization and environment and a one-time link to
create the first owner; it logs that link, and this command shows it boxed on stderr instead.

With ``--tls-cert`` and ``--tls-key`` (or ``TESTGATE_HTTP__TLS_CERT`` / ``TESTGATE_HTTP__TLS_KEY``) uvicorn
serves HTTPS itself. Behind a reverse proxy that terminates TLS, leave them unset and list the proxy in
``TESTGATE_HTTP__TRUSTED_PROXIES``: uvicorn's own proxy-header handling is off, so only the front door's
``Forwarded`` layer decides which forwarded addresses are believed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from testgate import __version__, logconfig
from testgate.cli import output
from testgate.cli.params import DataDir
from testgate.config import Settings
from testgate.platform import links

STARTUP_FAILURE = 3  # as uvicorn.run exits when the application did not start (its lifespan failed)

SETUP_LOGGER = "testgate.app"


log = structlog.get_logger("testgate.serve")


def server_settings(
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> Settings:
    """Settings from the environment, with the command's options taking precedence."""
    options = {"data_dir": data_dir, "host": host, "port": port}
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    tls = {k: v for k, v in {"tls_cert": tls_cert, "tls_key": tls_key}.items() if v is not None}
    if tls:
        given["http"] = tls  # merged into the rest of TESTGATE_HTTP__*
    return Settings(**given)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves: HTTPS when a certificate is configured; forwarded headers left to the front door.

    uvicorn's own access log stays off: it writes the request line as it came, query string included
    (a one-time setup token, an OAuth authorization code). The front door logs every request without its
    query (``http.accesslog``). On SIGTERM open requests get ``shutdown_grace`` seconds, then are closed.
    """
    http = settings.http
    options: dict[str, Any] = {"proxy_headers": False, "server_header": False, "access_log": False}
    # A long poll (wait_for_executions, up to 900 s) or a followed log held a stopping replica open until it
    # ended: a rolling restart could wait an hour a replica, and orchestrators kill what does not stop.
    options["timeout_graceful_shutdown"] = http.shutdown_grace
    if http.tls_cert is not None:
        options["ssl_certfile"] = str(http.tls_cert)
        options["ssl_keyfile"] = str(http.tls_key) if http.tls_key is not None else None
        if http.tls_key_password is not None:
            options["ssl_keyfile_password"] = http.tls_key_password.get_secret_value()
    return options


def endpoints(settings: Settings) -> list[tuple[str, str]]:
    """Where people and agents reach this server, for the default organization and environment."""
    base = settings.base_url
    org, env = settings.default_organization, settings.default_environment
    return [
        ("REST API", f"{links.api_url(base, org, env)}/workflows"),
        ("API docs", f"{base}/api/v1/docs"),
        ("MCP", links.mcp_url(base, org, env)),
        ("console", f"{base}/ui"),
    ]


def setup_panel(link: str) -> Panel:
    """The first-start notice around the one-time owner link."""
    body = (
        "No owner yet. Open this one-time link to create the first owner:\n\n"
        f"[bold]{escape(link)}[/]\n\n"
        "[dim]It works once; a restart before it is used issues a new one.[/]"
    )
    return Panel(body, title="first start", title_align="left", border_style="yellow", expand=False)


def announce_setup_link(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: show the lifespan's setup link boxed on stderr instead of as a log line
    (when logs are JSON lines the link stays one, so a log shipper never meets a box)."""
    link = event.get("link")
    if event.get("logger") == SETUP_LOGGER and isinstance(link, str):
        console = Console(stderr=True, highlight=False)
        console.width = max(console.width, len(link) + 6)  # the link on one line, whole, to copy
        console.print(setup_panel(link))
        raise structlog.DropEvent
    return event


def _configure_logging(settings: Settings) -> None:
    logconfig.configure(settings.log_format, settings.log_level)
    if logconfig.writes_json(settings.log_format):
        return
    processors = list(structlog.get_config()["processors"])
    # Before the last processor (the stdlib formatter hand-off), after the logger name is added.
    processors.insert(len(processors) - 1, announce_setup_link)
    structlog.configure(processors=processors)


def _banner(settings: Settings) -> None:
    database = "embedded SQLite" if settings.database_url is None else "TESTGATE_DATABASE_URL"
    if logconfig.writes_json(settings.log_format):  # one JSON object per line, as every other log line
        where = dict(endpoints(settings))
        log.info(
            "testgate started",
            version=__version__,
            url=settings.base_url,
            endpoints=where,
            data_dir=str(settings.data_dir),
            database=database,
            runner=settings.runner.executor,
        )
        return
    lines = "\n".join(f"  {name:<9} {escape(url)}" for name, url in endpoints(settings))
    output.err.print(
        f"[bold]testgate {__version__}[/] on {escape(settings.base_url)}\n{lines}\n"
        f"  {'data':<9} {escape(str(settings.data_dir))} ({database}, {settings.runner.executor} runner)",
        soft_wrap=True,
    )


def serve(
    host: Annotated[
        str | None, typer.Option("--host", help="Interface to bind (default: $TESTGATE_HOST, else 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Port (default: $TESTGATE_PORT, else 8080).")
    ] = None,
    data_dir: DataDir = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", exists=True, dir_okay=False, help="PEM certificate chain: serve HTTPS."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", exists=True, dir_okay=False, help="PEM private key of --tls-cert.")
    ] = None,
) -> None:
    """Start the control plane: REST API, MCP endpoints and web console."""
    settings = server_settings(data_dir, host, port, tls_cert, tls_key)
    # Bound before anything starts: a port in use or an address this machine lacks ends the command at once,
    # before the lifespan migrates, bootstraps or hands out a setup link (and, with --port 0, the banner and
    # every link name the port the system chose).
    sockets = listen(settings.host, settings.port)
    try:
        if (metrics := settings.http.metrics_listen) is not None:
            # Tried and let go again: the lifespan binds it, and a failure there was a traceback.
            metrics_host, _, metrics_port = metrics.rpartition(":")
            for taken in listen(metrics_host.strip("[]"), int(metrics_port), "metrics (TESTGATE_HTTP__METRICS_LISTEN)"):
                taken.close()
        preflight(settings)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if settings.port == 0:
        settings = settings.model_copy(update={"port": sockets[0].getsockname()[1]})
    _configure_logging(settings)
    _banner(settings)
    # Imported here: the web stack is heavy and no other command needs it.
    import uvicorn

    from testgate.app import create_app

    # log_config=None: uvicorn's loggers go through the structlog setup above (to stderr).
    config = uvicorn.Config(create_app(settings), log_config=None, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    with contextlib.ExitStack() as held, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: shut down gracefully
        for sock in sockets:
            held.enter_context(sock)
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def preflight(settings: Settings) -> None:
    """Stop at once, with one line, on what would keep a started server from serving: a certificate and key
    that do not load, an artifact directory it cannot write, a database it cannot reach, and an OAuth
    signing key it cannot use (a replica without the others' key encryption secret would report ready and
    fail every sign-in)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from testgate.oauth import keys
    from testgate.store.db import Database, create_engine, unusable
    from testgate.store.migrate import UnknownRevision, current_revision, head_revision, known

    async def check() -> str | None:
        engine = create_engine(settings.effective_database_url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            current = await current_revision(engine)
            if current is not None and not known(current):
                raise UnknownRevision(current)
            if current != head_revision():
                # A new database (its keys will use this server's secret), or one the lifespan is about to
                # migrate: the table read here may not have its current shape yet.
                return None
            async with Database(engine).session(write=False) as session:
                return await keys.signing_problem(session, settings.oauth)
        finally:
            await engine.dispose()

    if (tls := _tls_problem(settings)) is not None:
        output.invalid_setting(*tls)
        raise typer.Exit(2)
    if settings.artifacts.store == "filesystem":
        folder = settings.artifacts_dir
        try:
            for level in (*reversed(folder.parents), folder):  # each one created owner-only, the data dir too
                if not level.exists():
                    level.mkdir(mode=0o700)
            writable = os.access(folder, os.W_OK | os.X_OK)
        except OSError as exc:
            writable, folder = False, Path(f"{folder} ({exc.strerror})")
        if not writable:
            output.invalid_setting("TESTGATE_ARTIFACTS__PATH", f"the artifact directory {folder} cannot be written")
            raise typer.Exit(2)
    try:
        problem = asyncio.run(check())
    except (SQLAlchemyError, OSError, UnknownRevision) as exc:
        output.err.print(f"[red]error:[/] {escape(unusable(settings.effective_database_url, exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if problem is not None:
        output.invalid_setting(
            "TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET",
            f"{problem}; every replica needs the same secret (to change it: `testgate db rotate-signing-key`)",
        )
        raise typer.Exit(2)


def _tls_problem(settings: Settings) -> tuple[str, str] | None:
    """Why uvicorn could not load the configured certificate and key (a traceback from inside it, else)."""
    http = settings.http
    if http.tls_cert is None or http.tls_key is None:
        return None  # both or neither: HttpSettings refuses one alone
    for variable, path in (("TESTGATE_HTTP__TLS_CERT", http.tls_cert), ("TESTGATE_HTTP__TLS_KEY", http.tls_key)):
        if not path.is_file():
            return variable, f"{path} is not a file"
    password = http.tls_key_password.get_secret_value() if http.tls_key_password is not None else None
    try:
        # A callable password: OpenSSL asks the terminal for one when it is None and the key is encrypted.
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            http.tls_cert, http.tls_key, lambda: password or ""
        )
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or "unreadable"
        return "TESTGATE_HTTP__TLS_CERT", (
            f"{http.tls_cert} and {http.tls_key} do not load as a PEM certificate and its key ({reason}); "
            "an encrypted key needs TESTGATE_HTTP__TLS_KEY_PASSWORD"
        )
    return None


def listen(host: str, port: int, what: str = "") -> list[socket.socket]:
    """TCP sockets bound to every address ``host`` names (``localhost``: 127.0.0.1 and ::1; empty: every
    interface), as uvicorn's own start binds them, on one port (with 0, the one the system chose for the
    first). An address this machine does not have is passed over (a name listing ::1 where IPv6 is off);
    a clean error (exit 1) if nothing could be bound, or a port is in use."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        _cannot_listen(host, port, what, exc.strerror or str(exc))
    addresses = list(dict.fromkeys((family, address[0]) for family, _, _, _, address in found))
    sockets: list[socket.socket] = []
    unavailable: OSError | None = None
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # its IPv4 twin has a socket of its own
            try:
                sock.bind((address, port or (sockets[0].getsockname()[1] if sockets else 0)))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                unavailable = exc
                continue
            sock.set_inheritable(True)
            sockets.append(sock)
        if not sockets:
            raise unavailable or OSError(errno.EADDRNOTAVAIL, "no address to listen on")
    except OSError as exc:
        for sock in sockets:
            sock.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        _cannot_listen(host, port, what, why)
    return sockets


def _cannot_listen(host: str, port: int, what: str, why: str) -> NoReturn:
    purpose = f" for {what}" if what else ""
    output.err.print(
        f"[red]error:[/] cannot listen{escape(purpose)} on {escape(host)} port {port}: {escape(why)}", soft_wrap=True
    )
    raise typer.Exit(1)
