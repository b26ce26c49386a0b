"""Signing in through a real OpenID Provider (node-oidc-provider), driven end to end in headless Chromium."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select
from tests.oauth.conftest import Flow
from tests.sso.conftest import SsoWorld
from tests.sso.sso_browser import Visitor

from testgate.http.outbound import Outbound
from testgate.oauth import browser, sso, sso_routes
from testgate.oauth.sso import Pending
from testgate.store.tenancy import EnvironmentGrant, Membership, User

pytestmark = pytest.mark.slow


def at(path: str) -> Callable[[str], bool]:
    """Arrived once the browser shows a page under ``path``."""
    return lambda url: urlsplit(url).path.startswith(path)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def user_named(world: SsoWorld, email: str) -> User | None:
    async with world.live.platform.db.session() as session:
        return await session.scalar(select(User).where(User.email == email))


async def test_a_member_signs_in_to_the_console_with_the_providers_button(world: SsoWorld, visitor: Visitor) -> None:
    where = await visitor.go(world.live.base + "/login", "ada", at("/ui/"), click="Sign in with Example ID")
    assert urlsplit(where).path == "/ui/acme/dev/workflows"
    events = await world.events("auth.sso_login", "member.provisioned")
    assert [(e.action, e.outcome, e.actor_name) for e in events] == [("auth.sso_login", "allowed", "ada@example.com")]
    assert events[0].arguments == {"issuer": world.op.issuer, "subject": "ada"}


async def test_a_verified_newcomer_is_provisioned_with_the_default_role_and_grants(
    world: SsoWorld, visitor: Visitor
) -> None:
    await visitor.go(world.live.base + "/oauth/sso/start?next=/ui", "grace", at("/ui/"))
    user = await user_named(world, "grace@example.com")
    assert user is not None
    assert (user.name, user.password_hash) == ("Grace Hopper", None)
    async with world.live.platform.db.session() as session:
        role = await session.scalar(select(Membership.role).where(Membership.user_id == user.id))
        grants = list(
            await session.scalars(select(EnvironmentGrant.permission).where(EnvironmentGrant.user_id == user.id))
        )
    assert (role, grants) == ("member", ["run"])
    events = await world.events("auth.sso_login", "member.provisioned")
    assert [(e.action, e.actor_id) for e in events] == [("member.provisioned", user.id), ("auth.sso_login", user.id)]
    assert events[0].arguments == {"via": "sso", "role": "member", "grants": {"dev": "run"}, "new_account": True}


async def test_an_oauth_authorization_resumes_after_signing_in_through_the_provider(
    world: SsoWorld, visitor: Visitor
) -> None:
    base, callback = world.live.base, world.capture.url
    async with httpx.AsyncClient(base_url=base) as http:
        flow = Flow(http, base=base)
        client_id = (await flow.register([callback]))["client_id"]
        query = urlencode(flow.params(client_id, redirect_uri=callback))
        link = sso.login_link(world.upstream, query)
        assert link is not None
        assert link["name"] == "Example ID"
        where = await visitor.go(base + link["url"], "ada", lambda url: url.startswith(callback))
        answer = query_of(where)
        assert (answer["state"], answer["iss"]) == (flow.state, base)
        tokens = await flow.exchange(client_id, answer["code"], redirect_uri=callback)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "testgate:read testgate:run"


async def test_an_unverified_email_is_refused_and_no_account_is_made(world: SsoWorld, visitor: Visitor) -> None:
    await visitor.go(world.live.base + "/oauth/sso/start", "eve", at("/oauth/sso/callback"))
    assert "has not verified this email address" in await visitor.text()
    assert await user_named(world, "eve@example.com") is None
    events = await world.events("auth.sso_login", "member.provisioned")
    assert [(e.outcome, e.actor_name) for e in events] == [("denied", "eve@example.com")]
    assert "not verified" in events[0].reason


async def test_an_answer_carrying_another_state_is_refused(world: SsoWorld, visitor: Visitor) -> None:
    # RFC 6749 §10.12: the answer must carry the state this browser's sign-in started with.
    async with httpx.AsyncClient(base_url=world.live.base) as http:
        started = await http.get("/oauth/sso/start", params={"next": "/ui"})
    page = await visitor.open()
    cookie = {"name": "testgate_sso", "value": started.cookies["testgate_sso"], "domain": "127.0.0.1"}
    await page.context.add_cookies([{**cookie, "path": "/oauth/sso"}])
    parts = urlsplit(started.headers["location"])
    forged = urlunsplit(parts._replace(query=urlencode({**query_of(parts.geturl()), "state": "forged-state"})))
    await visitor.go(forged, "ada", at("/oauth/sso/callback"))
    assert "state is not this browser's sign-in" in await visitor.text()
    assert [e.outcome for e in await world.events("auth.sso_login")] == ["denied"]
    # No session was started: the console still wants a sign-in.
    await page.goto(world.live.base + "/ui")
    assert urlsplit(page.url).path == "/login"


async def test_an_id_token_minted_for_another_nonce_is_refused(world: SsoWorld, visitor: Visitor) -> None:
    # OIDC Core §3.1.3.7 step 11: the browser's sign-in expects one nonce; the provider's answer carries another.
    settings = world.live.settings
    key = await browser.mac_key(world.live.platform.db)
    expected = Pending.start(next="/ui")
    await (await visitor.open()).context.add_cookies(
        [{"name": "testgate_sso", "value": sso.seal(key, expected), "domain": "127.0.0.1", "path": "/oauth/sso"}]
    )
    provider = await sso.discover(world.upstream, Outbound())
    sent = replace(expected, nonce="a-nonce-of-another-sign-in")
    url = sso.authorization_url(provider, world.upstream, sso_routes.redirect_uri(settings), sent)
    await visitor.go(url, "ada", at("/oauth/sso/callback"))
    assert "nonce is not the one this sign-in sent" in await visitor.text()
    assert [e.outcome for e in await world.events("auth.sso_login")] == ["denied"]


async def test_a_console_target_off_this_server_becomes_the_console_home(world: SsoWorld) -> None:
    async with httpx.AsyncClient(base_url=world.live.base) as http:
        started = await http.get("/oauth/sso/start", params={"next": "https://evil.example/"})
    assert started.status_code == 302
    assert started.headers["location"].startswith(world.op.issuer + "/auth?")
    pending = sso.unseal(await browser.mac_key(world.live.platform.db), started.cookies["testgate_sso"])
    assert pending is not None
    assert pending.next == "/ui"
