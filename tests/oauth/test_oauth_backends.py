"""The authorization server's state on each real backend: an SQLite file and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from testgate.access.verifier import verify_bearer
from testgate.app import create_app
from testgate.errors import Unauthenticated
from testgate.oauth.login import LoginFailed, login_user, source_key
from testgate.oauth.settings import OAuthSettings
from testgate.platform.context import Platform
from testgate.store.oauth import LoginAttempt


@pytest.fixture
async def backend_client(backend_platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    settings = backend_platform.settings
    settings.default_organization = "acme"  # the fixture bootstraps acme; registrations are audited there
    app = create_app(settings, platform=backend_platform)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=settings.base_url) as http:
        yield http


# RFC 9700 §4.14.2 on both backends: a refresh rotates, and reusing the old token revokes the family.
async def test_the_flow_rotation_and_reuse_detection_work_on_each_backend(
    backend_platform: Platform,
    backend_client: httpx.AsyncClient,
    oauth_flow: Callable[..., Any],
    make_backend_user: Any,
) -> None:
    backend_platform.settings.oauth.refresh_grace = 0
    await make_backend_user(backend_platform)
    flow = oauth_flow(backend_client, backend_platform.settings.base_url)
    client_id = (await flow.register())["client_id"]
    first = await flow.tokens(client_id)
    second = (await flow.refresh(client_id, first["refresh_token"])).json()
    resource = flow.params(client_id)["resource"]
    assert await verify_bearer(backend_platform, second["access_token"], source=None, resource=resource)
    assert (await flow.refresh(client_id, first["refresh_token"])).json()["error"] == "invalid_grant"
    with pytest.raises(Unauthenticated, match="revoked"):
        await verify_bearer(backend_platform, second["access_token"], source=None, resource=resource)


async def test_failed_sign_ins_are_counted_atomically_on_each_backend(backend_platform: Platform) -> None:
    rules = OAuthSettings(login_free_failures=3)
    for _ in range(2):
        async with backend_platform.db.sessions() as session:
            with pytest.raises(LoginFailed):
                await login_user(session, "who@example.com", "wrong password!!", "192.0.2.1", policy=rules)
            await session.commit()
    async with backend_platform.db.session() as session:
        row = await session.scalar(select(LoginAttempt).where(LoginAttempt.key == source_key("192.0.2.1")))
    assert row is not None
    assert row.failures == 2
