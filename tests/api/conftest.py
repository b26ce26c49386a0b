"""REST fixtures: the real app on the real platform, an in-process HTTP client and a token factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import httpx
import pytest
import yaml
from fastapi import FastAPI

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.app import create_app
from testgate.config import Settings
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

API = "/api/v1/organizations/acme/environments/dev"
Create = Callable[..., Awaitable[httpx.Response]]


class MakeToken(Protocol):
    async def __call__(
        self, *, org: str = "acme", permission: Permission | None = None, expires_at: datetime | None = None
    ) -> str: ...


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _workflow_yaml(name: str = "smoke", *, steps: list[dict[str, Any]] | None = None, **spec: Any) -> str:
    """A TestWorkflow YAML document (one ``echo hello`` step unless told otherwise)."""
    document = {
        "kind": "TestWorkflow",
        "metadata": {"name": name, "labels": {"team": "qa"}},
        "spec": {**spec, "steps": steps or [{"name": "greet", "shell": "echo hello"}]},
    }
    return yaml.safe_dump(document, sort_keys=False)


@pytest.fixture
def flow() -> Callable[..., str]:
    """Build a workflow YAML document: ``flow("name", steps=[...], **spec)``."""
    return _workflow_yaml


@pytest.fixture
async def executor(platform: Platform) -> AsyncIterator[LocalExecutor]:
    runner = LocalExecutor(platform)
    await runner.start()
    platform.executor = runner
    yield runner
    await runner.close()


@pytest.fixture
def app(settings: Settings, platform: Platform) -> FastAPI:
    return create_app(settings, platform=platform)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def make_token(platform: Platform) -> MakeToken:
    """Issue an API token: admin without ``permission``, else a member token with it in ``dev``."""

    async def make(
        *, org: str = "acme", permission: Permission | None = None, expires_at: datetime | None = None
    ) -> str:
        async with platform.db.session() as session:
            organization = await tenancy.organization_by_slug(session, org)
            env = await tenancy.environment_by_slug(session, organization, "dev")
            issued = await tokens.issue(
                session,
                organization_id=organization.id,
                name=f"test-{permission.label if permission else 'admin'}",
                role=Role.MEMBER if permission else Role.ADMIN,
                grants={env.id: permission} if permission else {},
                created_by=None,
                expires_at=expires_at,
            )
        return issued.secret

    return make


@pytest.fixture
async def admin(make_token: MakeToken) -> dict[str, str]:
    """Headers carrying an admin token of ``acme``."""
    return _bearer(await make_token())


@pytest.fixture
def create_workflow(client: httpx.AsyncClient, admin: dict[str, str]) -> Create:
    """Create a workflow over REST (201 asserted): ``await create_workflow("name", steps=[...])``."""

    async def create(name: str = "smoke", **kwargs: Any) -> httpx.Response:
        headers = {**admin, "Content-Type": "application/yaml"}
        response = await client.post(f"{API}/workflows", content=_workflow_yaml(name, **kwargs), headers=headers)
        assert response.status_code == 201, response.text
        return response

    return create
