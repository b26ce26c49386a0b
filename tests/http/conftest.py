"""Front-door fixtures: the real application on a live port, replicas as processes, a throwaway Redis, tokens.

Tests run with ``--import-mode=importlib``, so everything shared is a fixture here, not an import.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.types import ASGIApp
from tests.conftest import service_unavailable
from tests.serving import free_port, serving

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.app import create_app
from testgate.config import Settings
from testgate.http.settings import HttpSettings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
MCP = "/organizations/acme/environments/dev/mcp"
API = "/api/v1/organizations/acme/environments/dev"
STARTUP = 30.0  # seconds a server process may take to answer /healthz


@asynccontextmanager
async def serve(app: ASGIApp, **options: Any) -> AsyncIterator[int]:
    """Serve ``app`` as ``testgate serve`` runs it (forwarded headers are the front door's decision, not
    uvicorn's); yields the port."""
    async with serving(app, proxy_headers=False, **options) as port:
        yield port


async def issue_token(platform: Platform, permission: Permission | None = None, org: str = "acme") -> tuple[str, str]:
    """An API token (admin, or a member with ``permission`` in dev); returns (secret, id)."""
    async with platform.db.session() as session:
        organization = await tenancy.organization_by_slug(session, org)
        grants = {}
        if permission is not None:
            grants[(await tenancy.environment_by_slug(session, organization, "dev")).id] = permission
        issued = await tokens.issue(
            session,
            organization_id=organization.id,
            name=f"bot-{os.urandom(3).hex()}",
            role=Role.MEMBER if permission is not None else Role.ADMIN,
            grants=grants,
            created_by=None,
            expires_at=None,
        )
    return issued.secret, issued.row.id


@dataclass
class Live:
    """The application on a loopback port, its settings and platform."""

    base: str
    settings: Settings
    platform: Platform
    http: httpx.AsyncClient = field(init=False)

    async def token(self, permission: Permission | None = None, org: str = "acme") -> str:
        """A new API token's secret: admin, or a member holding ``permission`` in dev."""
        return (await issue_token(self.platform, permission, org))[0]


LiveFactory = Callable[..., AbstractAsyncContextManager[Live]]


@pytest.fixture
def live_server(tmp_path: Path) -> LiveFactory:
    """``async with live_server(http=HttpSettings(...), **settings) as live``: the real app on its own SQLite."""

    @asynccontextmanager
    async def start(http: HttpSettings | None = None, **overrides: Any) -> AsyncIterator[Live]:
        data = tmp_path / f"data-{os.urandom(3).hex()}"
        values: dict[str, Any] = {"data_dir": data, "config_dir": tmp_path / "config", "default_organization": "acme"}
        settings = Settings(**values, http=http or HttpSettings(), **overrides)
        engine = create_engine(settings.effective_database_url)
        await upgrade(engine)
        db = Database(engine)
        async with db.session() as session:
            await tenancy.bootstrap(session, "acme", "dev")
        platform = Platform(settings=settings, db=db)
        try:
            async with serve(create_app(settings, platform=platform)) as port:
                live = Live(f"http://127.0.0.1:{port}", settings, platform)
                async with httpx.AsyncClient(base_url=live.base, timeout=20) as client:
                    live.http = client
                    yield live
        finally:
            await db.dispose()

    return start


# ---- processes ----------------------------------------------------------------------------------------


def wait_healthy(url: str, process: subprocess.Popen[bytes], verify: Any = True) -> None:
    """Poll ``url`` (bounded) until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + STARTUP
    with httpx.Client(verify=verify, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the server exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # bounded polling of a process we cannot await
    raise AssertionError(f"{url} did not become healthy within {STARTUP} s")


@dataclass
class Process:
    """A ``testgate serve`` subprocess."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Spawner:
    """``spawner(env, *args)``: ``python -m testgate serve`` on a free port, returned once /healthz answers."""

    folder: Path
    running: list[Process] = field(default_factory=list)

    def __call__(self, env: dict[str, str], *args: str, scheme: str = "http", verify: Any = True) -> Process:
        port = free_port()
        log = self.folder / f"serve-{port}.log"
        full = {**os.environ, "PYTHONUNBUFFERED": "1", "TESTGATE_LOG_FORMAT": "json", **env}
        command = [sys.executable, "-m", "testgate", "serve", "--port", str(port), *args]
        with log.open("wb") as sink:
            process = subprocess.Popen(command, env=full, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
        server = Process(f"{scheme}://127.0.0.1:{port}", process, log)
        self.running.append(server)
        try:
            wait_healthy(f"{server.base}/healthz", process, verify)
        except AssertionError as exc:
            server.stop()
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None
        return server

    def stop_all(self) -> None:
        for server in self.running:
            server.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    """Server processes for one test, stopped after it."""
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.stop_all()


@pytest.fixture(scope="module")
def module_spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spawner]:
    """Server processes shared by a module's tests (startup is the slow part), stopped after them."""
    spawner = Spawner(tmp_path_factory.mktemp("servers"))
    yield spawner
    spawner.stop_all()


@dataclass
class Redis:
    """A private ``redis-server`` on a free port: started, and killed mid-test, at will."""

    binary: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)  # bounded polling of a process we cannot await
        raise AssertionError("redis-server did not listen")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def throwaway_redis() -> Iterator[Redis]:
    """A private Redis (never the shared service), so a test may stop it."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("redis-server", "the redis-server binary is not installed")
    redis = Redis(binary)
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, private key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "testgate test")])
    now = datetime.now(UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    issued = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(issued.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private.write_bytes(pem)
    private.chmod(0o600)
    return cert, private
