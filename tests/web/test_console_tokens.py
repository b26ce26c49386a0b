"""The console's API token pages: the secret page, single-use create and rotate forms, the list's statuses."""

from __future__ import annotations

import re

import httpx
from tests.web.conftest import MakeUser, SignIn, hidden

from testgate.access.principal import Permission

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
