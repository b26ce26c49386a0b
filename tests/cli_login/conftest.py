"""CLI login fixtures: a live testgate, a person at headless Chromium, and the ``testgate`` command.

The CLI runs as a subprocess where the process boundary is the subject (``login`` printing its URL and
waiting on its loopback listener, ``whoami``, ``logout``, ``mcp serve``) with its own configuration
directory, home and a scrubbed environment, so nothing on this machine (a real login, a proxy) leaks in.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from tests.oauth.conftest import Live, LiveFactory, chromium, live_server, person, test_ca  # noqa: F401 - fixtures
from tests.oauth.oauth_person import Person
from tests.oauth.oauth_servers import TestCA, serve
from tests.serving import free_socket

from testgate.app import create_app
from testgate.config import Settings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade


@dataclass
class Done:
    """A finished CLI command."""

    code: int
    out: str
    err: str


@dataclass
class Cli:
    """The ``testgate`` command with this test's configuration directory."""

    home: Path

    @property
    def config_dir(self) -> Path:
        return self.home / "config"

    @property
    def credentials(self) -> Path:
        return self.config_dir / "credentials.json"

    def env(self, **extra: str) -> dict[str, str]:
        """A scrubbed environment: no proxies, no tokens, no real home from this machine."""
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")}
        return {
            **keep,
            "HOME": str(self.home),
            "TESTGATE_CONFIG_DIR": str(self.config_dir),
            "TESTGATE_DATA_DIR": str(self.home / "data"),
            "TESTGATE_LOG_FORMAT": "json",
            **extra,
        }

    async def start(self, *args: str, **extra: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "testgate",
            *args,
            env=self.env(**extra),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    async def run(self, *args: str, **extra: str) -> Done:
        process = await self.start(*args, **extra)
        with anyio.fail_after(60):
            out, err = await process.communicate()
        return Done(process.returncode or 0, out.decode(), err.decode())

    async def login(self, live: Live, someone: Person, *args: str) -> Done:
        """``testgate login`` with ``--no-browser``: the person opens the printed URL, signs in and allows."""
        process = await self.start("login", *(args or (live.base,)), "--no-browser")
        assert process.stderr is not None
        printed: list[str] = []
        with anyio.fail_after(60):
            async for raw in process.stderr:
                line = raw.decode().strip()
                printed.append(line)
                if line.startswith(f"{live.base}/oauth/authorize?"):
                    landed = await someone.authorize(line)
                    assert "/callback?code=" in landed, landed
                    break
            out, err = await process.communicate()
        return Done(process.returncode or 0, out.decode(), "\n".join(printed) + err.decode())


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "home").mkdir()
    return Cli(tmp_path / "home")


@pytest.fixture
def tls_server(tmp_path: Path, test_ca: TestCA) -> LiveFactory:  # noqa: F811 - the fixture imported above
    """``async with tls_server() as live``: testgate on https://localhost, its certificate from the test CA."""

    @asynccontextmanager
    async def start() -> AsyncIterator[Live]:
        sock = free_socket()
        port = sock.getsockname()[1]
        base = f"https://localhost:{port}"
        settings = Settings(
            data_dir=tmp_path / "tls",
            config_dir=tmp_path / "tls-config",
            port=port,
            public_url=base,
            default_organization="acme",
        )
        engine = create_engine(settings.effective_database_url)
        await upgrade(engine)
        db = Database(engine)
        async with db.session() as session:
            await tenancy.bootstrap(session, "acme", "dev")
        platform = Platform(settings=settings, db=db)
        tls = {"ssl_certfile": str(test_ca.certfile), "ssl_keyfile": str(test_ca.keyfile)}
        try:
            async with serve(create_app(settings, platform=platform), sock, **tls):
                yield Live(base, settings, platform)
        finally:
            await db.dispose()

    return start
