"""Console fixtures: people with passwords, the app in-process and on a live port, a workflow, and Chromium.

Browser tests are marked ``browser`` (``pytest -m browser`` selects them, ``-m 'not browser'`` skips them).
They drive Debian's headless Chromium through Playwright against uvicorn serving the real app with a real
``LocalExecutor``; without Chromium they skip, and in CI (``TESTGATE_REQUIRE_SERVICES=1``) they fail.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from tests.conftest import service_unavailable
from tests.serving import serving

from testgate.access.principal import Permission, Role
from testgate.access.users import hash_password
from testgate.app import create_app
from testgate.config import RunnerSettings, Settings
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor
from testgate.store.audit import AuditEventRow
from testgate.store.tenancy import EnvironmentGrant, Membership, User

PASSWORD = "correct horse battery staple"
BASE = "http://127.0.0.1:8080"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# A run that waits at two gates (files the test creates), so a test can watch a line arrive while it runs;
# its JUnit report has a passing and a failing test, and it keeps the report as an artifact.
GATED = """\
kind: TestWorkflow
metadata:
  name: gated
  description: Waits for a gate, then reports one passing and one failing test
  labels: {team: qa, tier: smoke}
spec:
  config:
    gate: {type: string, description: "a file whose existence opens the gate"}
  content:
    files:
      - path: reports/junit.xml
        content: >-
          <testsuite name="unit" tests="2" failures="1"><testcase classname="calc" name="adds" time="0.01"/>
          <testcase classname="calc" name="divides" time="0.02"><failure message="ZeroDivisionError: division by zero"
          >Traceback (most recent call last):
            File "calc.py", line 7, in divides
          ZeroDivisionError: division by zero</failure></testcase></testsuite>
  steps:
    - name: wait for the gate
      timeout: 60s
      shell: |
        echo "waiting for the gate"
        while [ ! -e "{{ config.gate }}" ]; do sleep 0.05; done
        echo "the gate opened"
        while [ ! -e "{{ config.gate }}.done" ]; do sleep 0.05; done
    - name: test
      shell: echo "FAILED calc.divides"
  artifacts: {paths: ["reports/**"]}
  results: {junit: ["reports/*.xml"]}
"""

QUICK = """\
kind: TestWorkflow
metadata: {name: quick, labels: {team: qa}}
spec:
  steps:
    - name: greet
      shell: echo "hello from quick"
"""

MakeUser = Callable[..., Awaitable[User]]


def hidden(page: str, name: str) -> str:
    """The value of the first hidden form field ``name`` of an HTML page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field in:\n{page}"
    return html.unescape(match[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        default_organization="acme",
        runner=RunnerSettings(heartbeat_seconds=0.5, kill_grace_seconds=1.0),
    )


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def make_user(platform: Platform) -> MakeUser:
    """A person with ``PASSWORD`` in ``acme``: a member with the given grants (by environment slug)."""

    async def make(email: str, *, role: Role = Role.MEMBER, grants: dict[str, Permission] | None = None) -> User:
        async with platform.db.session() as session:
            org = await tenancy.organization_by_slug(session, "acme")
            user = User(email=email, name=email.split("@")[0], password_hash=_password_hash())
            session.add(user)
            await session.flush()
            session.add(Membership(organization_id=org.id, user_id=user.id, role=role.value))
            for slug, permission in (grants or {}).items():
                env = await tenancy.environment_by_slug(session, org, slug)
                session.add(EnvironmentGrant(environment_id=env.id, user_id=user.id, permission=permission.label))
        return user

    return make


@pytest.fixture
async def executor(platform: Platform) -> AsyncIterator[LocalExecutor]:
    runner = LocalExecutor(platform)
    await runner.start()
    platform.executor = runner
    yield runner
    await runner.close()


@pytest.fixture
async def workflows(platform: Platform, call: Call) -> None:
    """The ``gated`` and ``quick`` workflows in ``acme/dev``."""
    for definition in (GATED, QUICK):
        await dispatch(platform, call, "workflow.create", {"definition": definition})


@pytest.fixture
def app(settings: Settings, platform: Platform) -> FastAPI:
    return create_app(settings, platform=platform)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


SignIn = Callable[..., Awaitable[httpx.Response]]


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    """Sign ``http`` in through the real form; returns the answer to the post."""
    form = await http.get("/login")
    csrf = hidden(form.text, "csrf")
    return await http.post("/login", data={"email": email, "password": password, "csrf": csrf, "next": "/ui"})


@pytest.fixture
def signed_in() -> SignIn:
    return sign_in


@pytest.fixture
def audit_events(platform: Platform) -> Callable[..., Awaitable[list[AuditEventRow]]]:
    """The audit events of ``action`` (every event without one), oldest first."""

    async def read(action: str | None = None) -> list[AuditEventRow]:
        query = select(AuditEventRow).order_by(AuditEventRow.seq)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        async with platform.db.session() as session:
            return list(await session.scalars(query))

    return read


# Live server and browser -------------------------------------------------------------------------------


@dataclass
class Live:
    base: str
    platform: Platform

    def ui(self, path: str = "") -> str:
        return f"{self.base}/ui/acme/dev{path}"


@pytest.fixture
async def live(app: FastAPI, platform: Platform, executor: LocalExecutor, workflows: None) -> AsyncIterator[Live]:
    """The app on a loopback port with a real executor and the test workflows."""
    async with serving(app, timeout_graceful_shutdown=1) as port:
        yield Live(f"http://127.0.0.1:{port}", platform)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        service_unavailable("playwright", str(exc))
    if not await anyio.Path(CHROMIUM).exists():
        service_unavailable("chromium", f"{CHROMIUM} is missing (apt-get install -y chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots() -> Path | None:
    """Where to save screenshots of the main pages (``TESTGATE_SCREENSHOTS=docs/screenshots``), if anywhere."""
    import os

    target = os.environ.get("TESTGATE_SCREENSHOTS")
    return Path(target) if target else None
