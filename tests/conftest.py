"""Shared fixtures: a real platform on a real SQLite file (and PostgreSQL where asked)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testgate.access.principal import Principal, local_owner
from testgate.config import ArtifactSettings, RunnerSettings, Settings
from testgate.http.settings import HttpSettings
from testgate.operations.context import Call
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.db import Database, create_engine
from testgate.store.migrate import upgrade

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REQUIRE_SERVICES = os.environ.get("TESTGATE_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("TESTGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def service_unavailable(name: str, why: str) -> None:
    """Skip on a laptop without the service; fail in CI, where the service is mandatory."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (TESTGATE_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def require_redis(host: str = "127.0.0.1", port: int = 6379) -> None:
    """Skip (or, in CI, fail) unless something listens where the Redis service should be."""
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex((host, port)) != 0:
            service_unavailable("Redis", f"nothing listens on {host}:{port}")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        config_dir=tmp_path / "config",
        runner=RunnerSettings(heartbeat_seconds=0.5, kill_grace_seconds=1.0),
        # In-process HTTP clients (httpx ASGITransport, Starlette's TestClient) send Host: testserver.
        http=HttpSettings(allowed_hosts=["testserver"]),
    )


@pytest.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    engine = create_engine(settings.effective_database_url)
    await upgrade(engine)
    db = Database(engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "acme", "dev")
    yield Platform(settings=settings, db=db)
    await db.dispose()


@pytest.fixture
async def owner(platform: Platform) -> Principal:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
    return local_owner(org.id)


@pytest.fixture
def call(owner: Principal) -> Call:
    return Call(principal=owner, organization="acme", environment="dev", transport="internal")


async def _postgres_database() -> str:
    """Create a throwaway database on the PostgreSQL service and return its URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"tg_{secrets.token_hex(6)}"
    try:
        conn = await asyncpg.connect(
            host=base.host, port=base.port or 5432, user=base.username, database=base.database, timeout=5
        )
    except (OSError, asyncpg.PostgresError) as exc:
        service_unavailable("PostgreSQL", str(exc))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return base.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    base = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(host=base.host, port=base.port or 5432, user=base.username, database=base.database)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend_platform(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    """The platform on each real backend: an SQLite file, and a fresh PostgreSQL database."""
    url = await _postgres_database() if request.param == "postgres" else None
    async for platform in _platform_on(url, tmp_path):
        yield platform


@pytest.fixture
async def postgres_platform(tmp_path: Path) -> AsyncIterator[Platform]:
    """The platform on a fresh PostgreSQL database (for what only PostgreSQL has)."""
    async for platform in _platform_on(await _postgres_database(), tmp_path):
        yield platform


async def _platform_on(url: str | None, tmp_path: Path) -> AsyncIterator[Platform]:
    """A bootstrapped platform on ``url`` (None: an SQLite file under ``tmp_path``); a PostgreSQL database is
    dropped afterwards."""
    settings = Settings(data_dir=tmp_path / "data", config_dir=tmp_path / "config", database_url=url)
    engine = create_engine(settings.effective_database_url)
    await upgrade(engine)
    db = Database(engine)
    async with db.session() as session:
        await tenancy.bootstrap(session, "acme", "dev")
    try:
        yield Platform(settings=settings, db=db)
    finally:
        await db.dispose()
        if url is not None:
            await _drop_postgres_database(url)


S3_KEY_ID, S3_SECRET = "testgate-test", "testgate-test-secret"


@dataclass(frozen=True)
class S3:
    """A bucket of its own on the session's S3-compatible server (moto's, spoken to over real HTTP)."""

    endpoint_url: str
    bucket: str
    prefix: str = "runs"

    def settings(self, **overrides: Any) -> ArtifactSettings:
        values: dict[str, Any] = {
            "store": "s3",
            "s3_bucket": self.bucket,
            "s3_prefix": self.prefix,
            "s3_endpoint_url": self.endpoint_url,
            "s3_region": "us-east-1",
            "s3_access_key_id": S3_KEY_ID,
            "s3_secret_access_key": S3_SECRET,
            "s3_addressing_style": "path",
            **overrides,
        }
        return ArtifactSettings(**values)

    def client(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
        ).client("s3", endpoint_url=self.endpoint_url)

    def get(self, key: str) -> tuple[bytes, dict[str, str]]:
        """The bytes and user metadata of the object at ``prefix/key``."""
        answer = self.client().get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
        return answer["Body"].read(), answer["Metadata"]

    def keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 HTTP API on a free loopback port for the whole session (moto's threaded server)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> S3:
    """A fresh bucket for one test."""
    store = S3(s3_endpoint, f"tg-{secrets.token_hex(6)}")
    store.client().create_bucket(Bucket=store.bucket)
    return store
