"""Console error pages: a signed-in person can always sign out, and unknown console paths are console pages."""

from __future__ import annotations

import httpx
from tests.web.conftest import MakeUser, SignIn, hidden

from testgate.access.principal import Permission


async def test_a_signed_in_person_with_no_environment_can_sign_out_from_the_page_that_says_so(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("nobody@example.com")  # a member with no grants
    answer = await signed_in(client, "nobody@example.com")
    page = await client.get(answer.headers["location"])
    assert page.status_code == 404
    assert "have no environment in organization" in page.text
    assert 'href="/ui">Back to the console' not in page.text  # it would lead back here
    assert "nobody@example.com" in page.text
    out = await client.post("/ui/logout", data={"csrf": hidden(page.text, "csrf")})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert (await client.get("/ui")).headers["location"].startswith("/login")


async def test_an_error_page_inside_an_environment_keeps_the_sign_out_control(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/executions/01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert page.status_code == 404
    assert 'href="/ui">Back to the console' in page.text
    out = await client.post("/ui/logout", data={"csrf": hidden(page.text, "csrf")})
    assert out.status_code == 303
    assert (await client.get("/ui/acme/dev/workflows")).status_code == 303  # to the sign-in form


async def test_an_error_page_for_someone_not_signed_in_offers_no_sign_out(client: httpx.AsyncClient) -> None:
    answer = await client.post("/ui/acme/dev/workflows/quick/run", data={})
    assert answer.status_code == 401
    assert 'action="/ui/logout"' not in answer.text


async def test_a_console_path_nothing_serves_answers_with_the_consoles_html_404_page(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    paths = ["/ui/default", "/ui/acme/dev/nonexistent", "/ui/%2f%2fevil.com", "/ui/acme/dev/executions/1/x/y"]
    for signed in (False, True):
        if signed:
            await signed_in(client, "ada@example.com")
        for path in paths:
            page = await client.get(path)
            assert page.status_code == 404, path
            assert page.headers["content-type"].startswith("text/html"), path
            assert page.headers["content-security-policy"].startswith("default-src 'none'"), path
            assert "There is no console page at this address." in page.text
            assert "evil.com" not in page.text
            assert ('action="/ui/logout"' in page.text) is signed, path
    api = await client.get("/api/v1/nonexistent")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    assert (await client.get("/ui/acme/dev/executions/")).status_code in (303, 307)  # trailing slash: redirected
    assert (await client.get("/ui/logout")).status_code == 405  # a console path, but not for GET
