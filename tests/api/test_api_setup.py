"""The first-owner setup page: one-time link, anti-CSRF form, argon2id password, refusals."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from testgate.access import users
from testgate.platform.context import Platform
from testgate.runtime import bootstrap_default
from testgate.store.audit import AuditEventRow
from testgate.store.tenancy import Membership, SetupToken, User

PASSWORD = "correct horse battery"


@pytest.fixture
async def setup_token(platform: Platform) -> str:
    boot = await bootstrap_default(platform, issue_setup_token=True)
    assert boot.setup_token is not None
    return boot.setup_token


async def _open_form(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    response = await client.get("/setup", params={"token": token})
    assert response.status_code == 200, response.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', response.text)
    assert csrf is not None
    return {"token": token, "csrf": csrf.group(1)}


def _fields(form: dict[str, str], **overrides: str) -> dict[str, str]:
    values = {"name": "Ada Owner", "email": "Ada@Example.com", "password": PASSWORD, "password_again": PASSWORD}
    return {**form, **values, **overrides}


async def test_the_setup_form_is_served_with_strict_headers(client: httpx.AsyncClient, setup_token: str) -> None:
    response = await client.get("/setup", params={"token": setup_token})

    assert response.status_code == 200
    assert '<form method="post" action="setup">' in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "form-action 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie


async def test_the_form_creates_the_owner_once(client: httpx.AsyncClient, platform: Platform, setup_token: str) -> None:
    form = await _open_form(client, setup_token)
    nonce = client.cookies["testgate_setup_csrf"]

    created = await client.post("/setup", data=_fields(form))
    client.cookies.set("testgate_setup_csrf", nonce, path="/setup")
    replayed = await client.post("/setup", data=_fields(form, email="b@example.com"))
    reopened = await client.get("/setup", params={"token": setup_token})

    assert created.status_code == 200, created.text
    assert "ada@example.com" in created.text
    # The next step is on the page: the sign-in form, relative like the form's own action (behind a path prefix too).
    assert '<a href="login">Sign in to the console</a>' in created.text
    assert (await client.get(httpx.URL("http://testserver/setup").join("login"))).status_code == 200
    assert replayed.status_code == 400
    assert "already used" in replayed.text
    assert reopened.status_code == 400
    assert "already used" in reopened.text
    async with platform.db.session() as session:
        user = await session.scalar(select(User).where(User.email == "ada@example.com"))
        assert user is not None
        membership = await session.scalar(select(Membership).where(Membership.user_id == user.id))
        token_row = await session.scalar(select(SetupToken).where(SetupToken.used_at.is_not(None)))
        events = list(await session.scalars(select(AuditEventRow.action)))
        others = await session.scalar(select(User).where(User.email == "b@example.com"))
    assert user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert users.verify_password(user.password_hash, PASSWORD)
    assert membership is not None
    assert membership.role == "owner"
    assert token_row is not None
    assert others is None
    assert "setup.owner_created" in events


async def test_an_unknown_setup_token_is_refused(client: httpx.AsyncClient, setup_token: str) -> None:
    response = await client.get("/setup", params={"token": "not-the-token"})

    assert response.status_code == 400
    assert "not valid" in response.text
    assert "<form" not in response.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password_again": "something else entirely"}, "do not match"),
        ({"password": "short", "password_again": "short"}, "at least 12 characters"),
        ({"email": "not-an-address"}, "email"),
    ],
    ids=["mismatch", "weak", "bad-email"],
)
async def test_a_bad_form_is_refused_and_the_link_still_works(
    client: httpx.AsyncClient, setup_token: str, overrides: dict[str, str], message: str
) -> None:
    form = await _open_form(client, setup_token)

    refused = await client.post("/setup", data=_fields(form, **overrides))
    retried = await client.post("/setup", data=_fields(form))

    assert refused.status_code == 400
    assert message in refused.text
    assert PASSWORD not in refused.text
    assert retried.status_code == 200


async def test_a_form_without_the_anti_csrf_cookie_is_refused(client: httpx.AsyncClient, setup_token: str) -> None:
    form = await _open_form(client, setup_token)
    client.cookies.clear()

    # A cross-site POST carries the form values an attacker could guess, but not the SameSite cookie.
    response = await client.post("/setup", data=_fields(form))
    forged = await client.post("/setup", data=_fields({**form, "csrf": "0" * 64}))

    assert response.status_code == 400
    assert "expired" in response.text
    assert forged.status_code == 400
