"""SSO fixtures: a real OpenID Provider (node-oidc-provider) and testgate on loopback ports, and a browser.

The provider is installed once into ``.tools/oidc-provider`` (gitignored) from the npm registry, which is
treated as a service: unavailable means skipped (or failed under ``TESTGATE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from tests.conftest import service_unavailable
from tests.oauth.conftest import Live, _make_user, chromium  # noqa: F401 - chromium is a fixture
from tests.oauth.oauth_servers import Callback, callback_app, serve
from tests.serving import free_socket
from tests.sso.sso_browser import Visitor

from testgate.app import create_app
from testgate.config import Settings
from testgate.oauth.settings import OAuthSettings, UpstreamSettings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

VERSION = "9.13.3"
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "oidc-provider"
PACKAGE = TOOLS / "node_modules" / "oidc-provider"
NODE22 = ROOT / ".tools" / "node22" / "node_modules" / ".bin" / "node"
SCRIPT = Path(__file__).with_name("oidc_op.mjs")
CLIENT_ID, CLIENT_SECRET = "testgate", "testgate-client-secret-for-the-tests"
ACCOUNTS = {
    "ada": {"email": "ada@example.com", "email_verified": True, "name": "Ada Lovelace"},
    "grace": {"email": "Grace@Example.com", "email_verified": True, "name": "Grace Hopper"},
    "eve": {"email": "eve@example.com", "email_verified": False, "name": "Eve"},
}


def _installed() -> bool:
    manifest = PACKAGE / "package.json"
    return manifest.exists() and json.loads(manifest.read_text())["version"] == VERSION


@pytest.fixture(scope="session")
def oidc_provider() -> tuple[str, Path]:
    """Node and the oidc-provider package, installed from the npm registry on first use."""
    node = str(NODE22) if NODE22.exists() else shutil.which("node")
    if node is None:
        service_unavailable("Node.js", "node is not installed")
    if not _installed():
        npm = shutil.which("npm")
        if npm is None:
            service_unavailable("npm", "npm is not installed")
        TOOLS.mkdir(parents=True, exist_ok=True)
        command = [str(npm), "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), f"oidc-provider@{VERSION}"]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=300)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            service_unavailable("the npm registry", str(exc))
        assert _installed(), "npm install did not produce oidc-provider"
    return str(node), PACKAGE


@dataclass
class OP:
    """The running provider."""

    issuer: str
    process: asyncio.subprocess.Process


async def _start_op(node: str, package: Path, clients: list[dict[str, Any]]) -> OP:
    config = json.dumps({"clients": clients, "accounts": ACCOUNTS})
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        env={"OP_CONFIG": config, "OIDC_PROVIDER": str(package), "PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    with anyio.fail_after(30):
        line = (await process.stdout.readline()).decode().strip()
    assert line.startswith("issuer "), f"the provider did not start: {line!r}"
    return OP(line.split(" ", 1)[1], process)


async def _stop_op(op: OP) -> None:
    assert op.process.stdin is not None
    op.process.stdin.close()
    try:
        with anyio.fail_after(10):
            await op.process.wait()
    finally:
        if op.process.returncode is None:
            op.process.kill()
            await op.process.wait()


@dataclass
class SsoWorld:
    """testgate with an upstream provider, the provider, and a client callback they may redirect to."""

    live: Live
    op: OP
    capture: Callback

    @property
    def upstream(self) -> UpstreamSettings:
        upstream = self.live.settings.oauth.upstream
        assert upstream is not None
        return upstream

    async def events(self, *actions: str) -> list[AuditEventRow]:
        async with self.live.platform.db.session() as session:
            rows = await session.scalars(
                select(AuditEventRow).where(AuditEventRow.action.in_(actions)).order_by(AuditEventRow.seq)
            )
            return list(rows)


@pytest.fixture
async def world(oidc_provider: tuple[str, Path], tmp_path: Path) -> AsyncIterator[SsoWorld]:
    """testgate (organization acme, with Ada as a member) signing people in through a real provider."""
    sock, capture_sock = free_socket(), free_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    capture = Callback(f"http://127.0.0.1:{capture_sock.getsockname()[1]}/callback")
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{base}/oauth/sso/callback", capture.url],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    op = await _start_op(*oidc_provider, [client])
    upstream = UpstreamSettings(
        issuer=op.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        name="Example ID",
        default_grants={"dev": "run"},
    )
    settings = Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        port=sock.getsockname()[1],
        default_organization="acme",
        oauth=OAuthSettings(upstream=upstream),
    )
    engine = create_engine(settings.effective_database_url)
    await upgrade(engine)
    db = Database(engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "acme", "dev")
    platform = Platform(settings=settings, db=db)
    await _make_user(platform, "ada@example.com")
    try:
        async with serve(create_app(settings, platform=platform), sock), serve(callback_app(capture), capture_sock):
            yield SsoWorld(Live(base, settings, platform), op, capture)
    finally:
        await db.dispose()
        await _stop_op(op)


@pytest.fixture
async def visitor(chromium: Any) -> AsyncIterator[Visitor]:  # noqa: F811 - the fixture imported above
    person = Visitor(chromium)
    try:
        yield person
    finally:
        await person.close()
