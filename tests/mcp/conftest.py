"""MCP fixtures: the real application on a live port, API tokens, and SDK clients in both protocol eras.

Tests run with ``--import-mode=importlib``, so everything shared is a fixture here, not an import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import func, select
from starlette.types import ASGIApp
from tests.serving import serving

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.app import create_app
from testgate.config import RunnerSettings, Settings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

LEGACY = "legacy"  # the 2025-11-25 initialize handshake, with an Mcp-Session-Id session
MODERN = "2026-07-28"  # stateless: every request carries its own envelope

FLOW = """\
kind: TestWorkflow
metadata: {name: smoke, labels: {team: qa}}
spec:
  content:
    files:
      - path: reports/junit.xml
        content: >-
          <testsuite name="unit" tests="2" failures="1"><testcase classname="calc" name="adds"/>
          <testcase classname="calc" name="divides"><failure message="ZeroDivisionError">trace here</failure>
          </testcase></testsuite>
  steps:
    - name: test
      shell: echo collecting; echo FAILED calc.divides
  artifacts: {paths: ["reports/**"]}
  results: {junit: ["reports/*.xml"]}
"""

Issue = Callable[..., Awaitable[str]]
Connect = Callable[..., AbstractAsyncContextManager[Client]]


@asynccontextmanager
async def serve(app: ASGIApp, *, startup_timeout: float = 15.0) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) with uvicorn on a free loopback port; yields its base URL.

    In-process ASGI transports buffer whole responses, so a 2025-era elicitation (a request the server
    sends mid-response) or an SSE stream needs a live server. Conformance and load runs can reuse this.
    """
    async with serving(app, startup_timeout=startup_timeout, timeout_graceful_shutdown=2) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(name="serve")
def serve_fixture() -> Callable[..., AbstractAsyncContextManager[str]]:
    """``serve(app)`` for tests that assemble their own application."""
    return serve


@dataclass
class Live:
    """The application serving on a loopback port, and the platform behind it."""

    base: str
    platform: Platform

    def url(self, env: str = "dev", org: str = "acme", endpoint: str = "mcp") -> str:
        return f"{self.base}/organizations/{org}/environments/{env}/{endpoint}"

    async def count(self, model: type[Any]) -> int:
        async with self.platform.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture(params=[LEGACY, MODERN])
def mode(request: pytest.FixtureRequest) -> str:
    """The protocol era a client speaks; a test taking ``mode`` runs in both."""
    return str(request.param)


@pytest.fixture
def flow() -> str:
    """A workflow with one step whose JUnit report has a passing and a failing test."""
    return FLOW


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        default_organization="acme",
        runner=RunnerSettings(heartbeat_seconds=0.5, kill_grace_seconds=1.0),
    )


@pytest.fixture
async def live(platform: Platform, settings: Settings) -> AsyncIterator[Live]:
    executor = LocalExecutor(platform)
    platform.executor = executor
    await executor.start()
    try:
        async with serve(create_app(settings, platform=platform)) as base:
            yield Live(base, platform)
    finally:
        await executor.close()


@pytest.fixture
def issue(platform: Platform) -> Issue:
    """Issue an API token: admin by default, or a member with ``permission`` in ``env``."""

    async def make(permission: Permission | None = None, env: str = "dev", name: str = "agent") -> str:
        async with platform.db.session() as session:
            org = await tenancy.organization_by_slug(session, "acme")
            grants: dict[str, Permission] = {}
            if permission is not None:
                grants[(await tenancy.environment_by_slug(session, org, env)).id] = permission
            issued = await tokens.issue(
                session,
                organization_id=org.id,
                name=name,
                role=Role.MEMBER if permission is not None else Role.ADMIN,
                grants=grants,
                created_by=None,
                expires_at=None,
            )
            return issued.secret

    return make


@pytest.fixture
async def admin(issue: Issue) -> str:
    return await issue()


@pytest.fixture
def connect(live: Live) -> Connect:
    """Open an SDK client over streamable HTTP with a bearer token, in the given protocol era."""

    @asynccontextmanager
    async def open_client(
        token: str, *, mode: str = LEGACY, env: str = "dev", elicitation: ElicitationFnT | None = None
    ) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http:
            transport = streamable_http_client(live.url(env), http_client=http)
            async with Client(transport, mode=mode, elicitation_callback=elicitation) as client:
                yield client

    return open_client
