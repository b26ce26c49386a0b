"""Housekeeping deletes only what can no longer matter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from testgate.oauth import housekeeping
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.oauth import AuthorizationCode, RefreshToken, RevokedAccessToken


async def count(platform: Platform, model: type[Any]) -> int:
    async with platform.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_expired_rows_go_and_live_ones_stay(flow: Any, make_user: Any, platform: Platform) -> None:
    await make_user()
    client_id = (await flow.register())["client_id"]
    tokens = await flow.tokens(client_id)
    await flow.http.post("/oauth/revoke", data={"token": tokens["access_token"], "client_id": client_id})
    async with platform.db.session() as session:
        now = await housekeeping.purge(session, platform.settings.oauth)
    assert now.codes == now.refresh_tokens == now.denied_access_tokens == 0
    assert await count(platform, RevokedAccessToken) == 1
    later = utcnow() + timedelta(days=40)
    async with platform.db.session() as session:
        purged = await housekeeping.purge(session, platform.settings.oauth, later)
    assert purged.codes == 1
    assert purged.refresh_tokens == 1
    assert purged.denied_access_tokens == 1
    for model in (AuthorizationCode, RefreshToken, RevokedAccessToken):
        assert await count(platform, model) == 0
