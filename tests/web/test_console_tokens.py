"""The console's API token pages: the secret page, single-use create and rotate forms, the list's statuses."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from tests.conftest import require_redis
from tests.web.conftest import BASE, MakeUser, SignIn, hidden

from testgate.access.principal import Permission
from testgate.app import create_app
from testgate.config import Settings
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.web.once import MemoryLedger

Events = Callable[..., Awaitable[list[AuditEventRow]]]

TOKENS = "/ui/acme/dev/tokens"
SECRET = re.compile(r'<code id="secret">(tgp_[^<]+)</code>')
REDIS = "redis://127.0.0.1:6379/0"


async def _new_token_form(client: httpx.AsyncClient, name: str = "ci", level: str = "read") -> dict[str, str]:
    form = await client.get(TOKENS)
    once = re.search(r'name="once" value="([^"]*)"', form.text)
    assert once, "the new-token form carries a single-use value"
    return {"csrf": hidden(form.text, "csrf"), "once": once[1], "name": name, "env.dev": level}


async def _create(client: httpx.AsyncClient, name: str = "ci") -> httpx.Response:
    return await client.post(TOKENS, data=await _new_token_form(client, name))


async def _rotate_form(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    listed = await client.get(TOKENS)
    found = re.search(r'/tokens/([0-9a-z]{26})/rotate".*?name="once" value="([^"]*)"', listed.text, re.S)
    assert found, "each rotate form carries a single-use value"
    return f"{TOKENS}/{found[1]}/rotate", {"csrf": hidden(listed.text, "csrf"), "once": found[2], "grace": "PT1H"}


def _tokens_listed(page: str) -> int:
    return page.count("<tr data-token=")


async def test_the_secret_page_names_only_ways_to_use_a_token_that_exist(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")

    created = await _create(client)

    assert created.status_code == 201
    assert "--token" not in created.text  # `testgate login` signs in through the browser only
    assert "Authorization: Bearer &lt;secret&gt;" in created.text
    assert "<code>TESTGATE_TOKEN</code> with <code>TESTGATE_URL</code>" in created.text  # README: Connect an agent
    assert "<code>testgate mcp serve</code>" in created.text


async def test_a_revoked_token_no_longer_shows_its_old_secrets_grace(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    await _create(client)
    rotate, fields = await _rotate_form(client)
    assert (await client.post(rotate, data=fields)).status_code == 200
    assert "old secret until" in (await client.get(TOKENS)).text

    revoke = rotate.removesuffix("/rotate") + "/revoke"
    question = await client.get(revoke)
    fields = {"csrf": hidden(question.text, "csrf"), "confirm": hidden(question.text, "confirm")}
    assert (await client.post(revoke, data=fields)).status_code == 303

    after = await client.get(TOKENS)
    assert 'class="status tk-revoked"' in after.text
    assert "old secret until" not in after.text  # revoking ended both secrets


async def test_revoking_without_the_confirmation_page_tells_the_person_to_use_it_and_revokes_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    await _create(client)
    listed = await client.get(TOKENS)
    token_id = re.search(r'/tokens/([0-9a-z]{26})/revoke"', listed.text)
    assert token_id

    answer = await client.post(f"{TOKENS}/{token_id[1]}/revoke", data={"csrf": hidden(listed.text, "csrf")})

    assert answer.status_code == 409
    assert "confirmation page" in answer.text
    assert "elicitation" not in answer.text
    assert "client cannot ask" not in answer.text
    (event,) = await audit_events("token.revoke")
    assert (event.outcome, event.confirmation, event.transport) == ("denied", "unavailable", "web")
    assert 'class="status tk-active"' in (await client.get(TOKENS)).text


async def test_reloading_the_page_of_a_created_secret_creates_no_second_token(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    form = await _new_token_form(client)

    first = await client.post(TOKENS, data=form)
    again = await client.post(TOKENS, data=form)  # what "confirm form resubmission" sends

    assert first.status_code == 201
    assert SECRET.search(first.text)
    assert again.status_code == 409
    assert "This form was already submitted: the token was created then" in again.text
    assert f'href="{TOKENS}"' in again.text
    assert not SECRET.search(again.text)
    assert _tokens_listed((await client.get(TOKENS)).text) == 1
    assert len(await audit_events("token.create")) == 1


async def test_sending_a_rotate_form_again_rotates_nothing_and_the_secret_shown_stays_valid(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    await _create(client)
    rotate, fields = await _rotate_form(client)

    first = await client.post(rotate, data=fields)
    again = await client.post(rotate, data=fields)

    secret = SECRET.search(first.text)
    assert first.status_code == 200
    assert secret
    assert again.status_code == 409
    assert "the token was rotated then" in again.text
    assert len(await audit_events("token.rotate")) == 1
    api = "/api/v1/organizations/acme/environments/dev/workflows"
    assert (await client.get(api, headers={"Authorization": f"Bearer {secret[1]}"})).status_code == 200


async def test_a_token_form_without_its_single_use_value_creates_nothing(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    form = await _new_token_form(client)
    forged = form | {"once": form["once"].split(".")[0] + ".x" * 20}

    missing = await client.post(TOKENS, data={k: v for k, v in form.items() if k != "once"})
    wrong = await client.post(TOKENS, data=forged)

    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert await audit_events("token.create") == []


async def test_a_refused_token_form_can_be_corrected_and_sent_again(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    form = await _new_token_form(client, level="write")

    refused = await client.post(TOKENS, data=form)  # more than Ada holds: dispatch changes nothing
    corrected = await client.post(TOKENS, data=form | {"env.dev": "read"})

    assert refused.status_code == 403
    assert corrected.status_code == 201


async def test_a_token_form_is_single_use_across_replicas_sharing_redis(
    settings: Settings, platform: Platform, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    require_redis()
    http = settings.http.model_copy(update={"rate_limit_prefix": f"test-{os.urandom(4).hex()}"})
    shared = settings.model_copy(update={"redis_url": SecretStr(REDIS), "http": http})
    one, two = create_app(shared, platform=platform), create_app(shared, platform=platform)
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    # Their lifespans close their Redis connections (the console's forms, the rate limits).
    async with (
        one.router.lifespan_context(one),
        two.router.lifespan_context(two),
        _browser(one) as first,
        _browser(two) as second,
    ):
        await signed_in(first, "ada@example.com")
        form = await _new_token_form(first)
        second.cookies = first.cookies  # the load balancer sends the reload to the other replica

        created = await first.post(TOKENS, data=form)
        again = await second.post(TOKENS, data=form)

    assert (created.status_code, again.status_code) == (201, 409)
    assert len(await audit_events("token.create")) == 1


async def test_a_spent_value_in_memory_is_refused_until_it_expires_and_can_be_given_back() -> None:
    now = [1000.0]
    ledger = MemoryLedger(capacity=2, clock=lambda: now[0])

    assert await ledger.spend("a", 60) is True
    assert await ledger.spend("a", 60) is False
    await ledger.release("a")
    assert await ledger.spend("a", 60) is True
    now[0] += 61
    assert await ledger.spend("a", 60) is True  # kept only as long as the sign-in it was bound to


def _browser(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    return httpx.AsyncClient(transport=transport, base_url=BASE)


@pytest.mark.redis
async def test_spent_form_keys_live_under_the_deployments_redis_prefix() -> None:
    # TESTGATE_HTTP__RATE_LIMIT_PREFIX names one deployment's keys in a shared Redis.
    require_redis()
    from redis.asyncio import Redis

    from testgate.web.once import RedisLedger

    ledger = RedisLedger(REDIS, prefix="deploy-7")
    client = Redis.from_url(REDIS)
    try:
        assert await ledger.spend("a-hash", ttl=30) is True
        assert await client.exists("deploy-7:console-once:a-hash") == 1
    finally:
        await client.delete("deploy-7:console-once:a-hash")
        await client.aclose()
        await ledger.close()
