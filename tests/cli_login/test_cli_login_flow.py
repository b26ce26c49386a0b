"""``testgate login``, ``whoami`` and ``logout`` against a live server, the browser part played by Chromium."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from tests.cli_login.conftest import Cli
from tests.oauth.conftest import LiveFactory
from tests.oauth.oauth_person import Person

from testgate.cli.credentials import Context, CredentialStore
from testgate.store.audit import AuditEventRow
from testgate.store.oauth import OAuthClient

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stored(cli: Cli) -> dict[str, Any]:
    return dict(json.loads(cli.credentials.read_text()))


async def test_login_keeps_the_tokens_readable_by_the_user_only(
    cli: Cli, live_server: LiveFactory, person: Person
) -> None:
    async with live_server() as live:
        await live.add_user()
        done = await cli.login(live, person)
        assert done.code == 0, done.err
        assert "Logged in to" in done.out
        context = stored(cli)["context"]
        # RFC 8252 §7.3 loopback redirect, RFC 8707 resource: the token is for the default environment's MCP URL.
        assert context["resource"] == live.url()
        assert (context["organization"], context["environment"]) == ("acme", "dev")
        assert context["scope"] == "testgate:read testgate:run testgate:write"
        assert context["access_token"]
        assert context["refresh_token"].startswith("tgr_")
    assert mode(cli.credentials) == 0o600
    assert mode(cli.config_dir) == 0o700
    assert context["access_token"] not in done.out + done.err


async def test_whoami_shows_the_login_but_never_its_tokens(cli: Cli, live_server: LiveFactory, person: Person) -> None:
    async with live_server() as live:
        ada = await live.add_user()
        assert (await cli.login(live, person)).code == 0
        shown = await cli.run("whoami")
    context = stored(cli)["context"]
    assert shown.code == 0, shown.err
    assert f"server:               {live.base}" in shown.out
    assert f"user:                 {ada.id}" in shown.out
    assert "acme/dev" in shown.out
    assert "testgate:read testgate:run testgate:write" in shown.out
    assert "(in 14 min)" in shown.out
    for secret in (context["access_token"], context["refresh_token"]):
        assert secret not in shown.out + shown.err


async def test_logout_revokes_the_refresh_token_at_the_server(
    cli: Cli, live_server: LiveFactory, person: Person
) -> None:
    async with live_server() as live:
        await live.add_user()
        assert (await cli.login(live, person)).code == 0
        before = Context.from_json(stored(cli)["context"])
        done = await cli.run("logout")
        assert done.code == 0, done.err
        # RFC 7009 §2.1: once revoked, the refresh token no longer refreshes.
        async with httpx.AsyncClient(base_url=live.base) as http:
            form = {"grant_type": "refresh_token", "refresh_token": before.refresh_token, "client_id": before.client_id}
            refreshed = await http.post("/oauth/token", data=form)
            called = await http.post(
                "/organizations/acme/environments/dev/mcp",
                headers={"Authorization": f"Bearer {before.access_token}", "Accept": "application/json"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
        async with live.platform.db.session() as session:
            revoked = await session.scalar(
                select(func.count()).select_from(AuditEventRow).where(AuditEventRow.action == "oauth.token_revoked")
            )
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")
    assert called.status_code == 401  # the access token was revoked with its family
    assert revoked == 1
    assert stored(cli)["context"] is None
    assert (await cli.run("whoami")).code == 1


async def test_a_second_login_reuses_the_registered_client(cli: Cli, live_server: LiveFactory, person: Person) -> None:
    async with live_server() as live:
        await live.add_user()
        assert (await cli.login(live, person)).code == 0
        # The second time through the environment's MCP URL itself (discovered by RFC 9728 path insertion).
        again = await cli.login(live, person, live.url())
        async with live.platform.db.session() as session:
            clients = await session.scalar(select(func.count()).select_from(OAuthClient))
    assert again.code == 0, again.err
    assert clients == 1
    assert list(stored(cli)["clients"]) == [live.base]


async def test_login_to_something_other_than_a_testgate_server_fails_before_any_browser(
    cli: Cli, live_server: LiveFactory
) -> None:
    async with live_server() as live:
        done = await cli.run("login", live.base + "/ui", "--no-browser")
    assert done.code == 1
    assert "publishes no protected-resource metadata (RFC 9728)" in done.err
    assert "Open this URL" not in done.err
    assert not cli.credentials.exists()


def test_the_credentials_file_is_tightened_to_0600_when_rewritten(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "config")
    store.folder.mkdir(mode=0o755)
    store.path.write_text("{}")
    store.path.chmod(0o644)
    context = Context("https://tg.example", "r", "o", "e", "c", "t", None, "a", "r", time.time() + 60, "s")
    store.save(context, client=("https://tg.example", "c"))
    assert (mode(store.path), mode(store.folder)) == (0o600, 0o700)
    assert store.context() == context
    assert store.client_id("https://tg.example") == "c"


async def test_the_browser_page_does_not_claim_a_login_before_the_code_is_redeemed() -> None:
    # Redeeming the code comes after this page, and can fail (a replica without the signing key's secret
    # failed every one): the page said "You are logged in" while the terminal said the login failed.
    from testgate.cli.loopback import Loopback

    loopback = Loopback("the-state")
    try:
        status, text = loopback._receive("/callback?state=the-state&code=c0de")
    finally:
        await loopback.close()

    assert status == 200
    assert "terminal says whether you are logged in" in text
    assert "You are logged in" not in text
    assert loopback.answer.result() == {"state": "the-state", "code": "c0de"}
