"""OAuth fixtures: the real app in-process and on a live port, people with passwords, a flow driver, a test CA.

Tests use these fixtures; the loopback servers (``oauth_servers``) and the browser-driving person
(``oauth_person``) live beside this file and are imported only here.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from fastapi import FastAPI
from tests.oauth.oauth_person import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Person
from tests.oauth.oauth_servers import (
    Callback,
    DocumentServer,
    TestCA,
    callback_app,
    document_app,
    make_test_ca,
    serve,
)
from tests.serving import free_socket

from testgate.access.principal import Permission, Role
from testgate.access.users import hash_password
from testgate.app import create_app
from testgate.config import RunnerSettings, Settings
from testgate.oauth.settings import OAuthSettings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade
from testgate.store.tenancy import EnvironmentGrant, Membership, User

BASE = "http://127.0.0.1:8080"
CALLBACK = "http://127.0.0.1:3000/callback"

MakeUser = Callable[..., Awaitable[User]]


def resource(env: str = "dev", base: str = BASE) -> str:
    return f"{base}/organizations/acme/environments/{env}/mcp"


def pkce() -> tuple[str, str]:
    """A verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def hidden(page: str, name: str) -> str:
    """The value of a hidden form field of an HTML page."""
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field in:\n{page}"
    return html.unescape(match[1])


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def oauth_settings() -> OAuthSettings:
    return OAuthSettings()


@pytest.fixture
def settings(tmp_path: Path, oauth_settings: OAuthSettings) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        default_organization="acme",
        runner=RunnerSettings(heartbeat_seconds=0.5, kill_grace_seconds=1.0),
        oauth=oauth_settings,
    )


@pytest.fixture
def app(settings: Settings, platform: Platform) -> FastAPI:
    return create_app(settings, platform=platform)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


async def _make_user(
    platform: Platform, email: str, *, role: Role = Role.MEMBER, grants: dict[str, Permission] | None = None
) -> User:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        user = User(email=email, name=email.split("@")[0], password_hash=_password_hash())
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=org.id, user_id=user.id, role=role.value))
        for slug, permission in (grants if grants is not None else {"dev": Permission.RUN}).items():
            env = await tenancy.environment_by_slug(session, org, slug)
            session.add(EnvironmentGrant(environment_id=env.id, user_id=user.id, permission=permission.label))
    return user


@pytest.fixture
def make_backend_user() -> Callable[..., Awaitable[User]]:
    """``make_backend_user(platform, email=...)``: a person on another platform (e.g. ``backend_platform``)."""
    return _make_user_default


async def _make_user_default(platform: Platform, email: str = "ada@example.com", **kwargs: Any) -> User:
    return await _make_user(platform, email, **kwargs)


@pytest.fixture
def make_user(platform: Platform) -> MakeUser:
    """A person with ``PASSWORD``: a member with run in ``dev`` unless told otherwise."""

    async def make(
        email: str = "ada@example.com", *, role: Role = Role.MEMBER, grants: dict[str, Permission] | None = None
    ) -> User:
        return await _make_user(platform, email, role=role, grants=grants)

    return make


@dataclass
class Flow:
    """Drives the authorization code flow through the app as a browser and a client would."""

    http: httpx.AsyncClient
    base: str = BASE
    verifier: str = ""
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))

    async def register(self, redirect_uris: list[str] | None = None, **metadata: Any) -> dict[str, Any]:
        body = {"redirect_uris": redirect_uris or [CALLBACK], "client_name": "Test agent", **metadata}
        body.setdefault("token_endpoint_auth_method", "none")
        body.setdefault("grant_types", ["authorization_code", "refresh_token"])
        response = await self.http.post("/oauth/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def params(self, client_id: str, **overrides: str | None) -> dict[str, str]:
        self.verifier, challenge = pkce()
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CALLBACK,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": self.state,
            "scope": "testgate:read testgate:run",
            "resource": resource(base=self.base),
            **overrides,
        }
        return {k: v for k, v in params.items() if v is not None}

    def sign_out(self) -> None:
        """Forget the browser's cookies (another person signs in next)."""
        self.http.cookies.clear()

    async def authorize(self, params: dict[str, str]) -> httpx.Response:
        return await self.http.get("/oauth/authorize", params=params)

    async def login(self, page: httpx.Response, email: str, password: str = PASSWORD) -> httpx.Response:
        form = {"request": hidden(page.text, "request"), "csrf": hidden(page.text, "csrf")}
        return await self.http.post("/oauth/login", data={**form, "email": email, "password": password})

    async def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        form = {"request": hidden(page.text, "request"), "csrf": hidden(page.text, "csrf"), "decision": decision}
        return await self.http.post("/oauth/authorize", data=form)

    async def code(self, client_id: str, email: str = "ada@example.com", **overrides: str | None) -> str:
        """Sign in, allow, and return the code the client receives."""
        params = self.params(client_id, **overrides)
        page = await self.authorize(params)
        if page.status_code == 200 and 'action="login"' in page.text:
            after = await self.login(page, email)
            assert after.status_code == 303, after.text
            page = await self.http.get("/oauth/" + after.headers["location"])
        if page.status_code == 200:
            page = await self.consent(page)
        assert page.status_code in (302, 303), page.text
        answer = query_of(page.headers["location"])
        assert answer["state"] == self.state, answer
        assert answer["iss"] == self.base, answer
        return answer["code"]

    async def exchange(self, client_id: str, code: str, **overrides: str | None) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "client_id": client_id,
            "code_verifier": self.verifier,
            "resource": resource(base=self.base),
            **overrides,
        }
        return await self.http.post("/oauth/token", data={k: v for k, v in form.items() if v is not None})

    async def tokens(self, client_id: str, email: str = "ada@example.com", **overrides: str | None) -> dict[str, Any]:
        response = await self.exchange(client_id, await self.code(client_id, email, **overrides))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def refresh(self, client_id: str, refresh_token: str, **extra: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id, **extra}
        return await self.http.post("/oauth/token", data=form)


@pytest.fixture
def flow(client: httpx.AsyncClient) -> Flow:
    return Flow(client)


@pytest.fixture
def oauth_flow() -> Callable[[httpx.AsyncClient, str], Flow]:
    """``oauth_flow(http, base)``: a flow driver for another client, e.g. one talking to a live server."""
    return Flow


# ---- live servers -------------------------------------------------------------------------------------


@dataclass
class Live:
    """testgate on a loopback port, its settings and platform."""

    base: str
    settings: Settings
    platform: Platform

    def url(self, env: str = "dev") -> str:
        return resource(env, self.base)

    async def add_user(self, email: str = "ada@example.com", **kwargs: Any) -> User:
        return await _make_user(self.platform, email, **kwargs)


LiveFactory = Callable[..., AbstractAsyncContextManager[Live]]


@pytest.fixture
def live_server(tmp_path: Path) -> LiveFactory:
    """``async with live_server(oauth=OAuthSettings(...)) as live``: a real server with its own database."""

    @asynccontextmanager
    async def start(oauth: OAuthSettings | None = None) -> AsyncIterator[Live]:
        sock = free_socket()
        port = sock.getsockname()[1]
        settings = Settings(
            data_dir=tmp_path / f"live{port}",
            config_dir=tmp_path / "config",
            port=port,
            default_organization="acme",
            oauth=oauth or OAuthSettings(),
        )
        engine = create_engine(settings.effective_database_url)
        await upgrade(engine)
        db = Database(engine)
        async with db.session() as session:
            await tenancy.bootstrap(session, "acme", "dev")
        platform = Platform(settings=settings, db=db)
        try:
            async with serve(create_app(settings, platform=platform), sock):
                yield Live(f"http://127.0.0.1:{port}", settings, platform)
        finally:
            await db.dispose()

    return start


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
async def documents(test_ca: TestCA) -> AsyncIterator[DocumentServer]:
    """An https server on localhost publishing client metadata documents, its certificate from ``test_ca``."""
    sock = free_socket()
    server = DocumentServer(f"https://localhost:{sock.getsockname()[1]}")
    tls = {"ssl_certfile": str(test_ca.certfile), "ssl_keyfile": str(test_ca.keyfile)}
    async with serve(document_app(server), sock, **tls):
        yield server


@pytest.fixture
async def callback() -> AsyncIterator[Callback]:
    """A client's loopback redirect URI, served for real (RFC 8252 §7.3)."""
    sock = free_socket()
    server = Callback(f"http://127.0.0.1:{sock.getsockname()[1]}/callback")
    async with serve(callback_app(server), sock):
        yield server


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium driven by Playwright (no browser download: the system binary)."""
    from tests.conftest import service_unavailable

    if not await anyio.Path(CHROMIUM).exists():
        service_unavailable("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        service_unavailable("Playwright", str(exc))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def person(chromium: Any) -> Person:
    return Person(chromium)
