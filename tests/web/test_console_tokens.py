"""The console's API token pages: the secret page, single-use create and rotate forms, the list's statuses."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import httpx
from tests.web.conftest import MakeUser, SignIn, hidden

from testgate.access.principal import Permission
from testgate.store.audit import AuditEventRow

Events = Callable[..., Awaitable[list[AuditEventRow]]]

TOKENS = "/ui/acme/dev/tokens"
SECRET = re.compile(r'<code id="secret">(tgp_[^<]+)</code>')


async def _create(client: httpx.AsyncClient, name: str = "ci") -> httpx.Response:
    form = await client.get(TOKENS)
    fields = {"csrf": hidden(form.text, "csrf"), "name": name, "env.dev": "read"}
    once = re.search(r'name="once" value="([^"]*)"', form.text)
    if once:
        fields["once"] = once[1]
    return await client.post(TOKENS, data=fields)


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
    listed = await client.get(TOKENS)
    token_id = re.search(r'/tokens/([0-9a-z]{26})/rotate"', listed.text)
    assert token_id
    rotate = {"csrf": hidden(listed.text, "csrf"), "grace": "PT1H"}
    once = re.search(rf'/tokens/{token_id[1]}/rotate".*?name="once" value="([^"]*)"', listed.text, re.S)
    if once:
        rotate["once"] = once[1]
    assert (await client.post(f"{TOKENS}/{token_id[1]}/rotate", data=rotate)).status_code == 200
    assert "old secret until" in (await client.get(TOKENS)).text

    question = await client.get(f"{TOKENS}/{token_id[1]}/revoke")
    fields = {"csrf": hidden(question.text, "csrf"), "confirm": hidden(question.text, "confirm")}
    assert (await client.post(f"{TOKENS}/{token_id[1]}/revoke", data=fields)).status_code == 303

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
