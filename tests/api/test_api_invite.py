"""The invitation page: the link ``member invite`` hands out sets the new member's password, once."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select, update

from testgate.access import users
from testgate.access.principal import local_owner
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.operations.members import Invited
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.tenancy import User

ORG = "/api/v1/organizations/acme"
PASSWORD = "correct horse battery"


async def _invite(platform: Platform) -> str:
    """Invite nia as the local owner (``testgate member invite``: API tokens cannot hand out the link)."""
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
    body = {"email": "nia@acme.test", "environments": {"dev": "read"}}
    invited = await dispatch(platform, Call(local_owner(org.id), "acme", None), "member.invite", body)
    assert isinstance(invited, Invited)
    assert invited.invite_url is not None
    url = urlsplit(invited.invite_url)
    assert url.path == "/invite"
    return parse_qs(url.query)["token"][0]


async def _form(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    page = await client.get("/invite", params={"token": token})
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return {"token": token, "csrf": csrf.group(1), "password": PASSWORD, "password_again": PASSWORD}


async def _user(platform: Platform) -> User:
    async with platform.db.session() as session:
        user = await session.scalar(select(User).where(User.email == "nia@acme.test"))
    assert user is not None
    return user


async def test_the_invitation_link_serves_a_strict_form_naming_the_invited_person(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    token = await _invite(platform)

    page = await client.get("/invite", params={"token": token})

    assert page.status_code == 200
    assert "nia@acme.test" in page.text
    assert '<form method="post" action="invite">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "samesite=strict" in page.headers["set-cookie"].lower()


async def test_the_form_sets_the_password_once_and_audits_it(client: httpx.AsyncClient, platform: Platform) -> None:
    token = await _invite(platform)
    form = await _form(client, token)
    nonce = client.cookies["testgate_invite_csrf"]

    accepted = await client.post("/invite", data=form)
    client.cookies.set("testgate_invite_csrf", nonce, path="/invite")
    other = "another long passphrase"
    replayed = await client.post("/invite", data={**form, "password": other, "password_again": other})
    reopened = await client.get("/invite", params={"token": token})

    assert accepted.status_code == 200, accepted.text
    assert "The password of <strong>nia@acme.test</strong> is set" in accepted.text
    assert '<a href="login">Sign in to the console</a>' in accepted.text
    user = await _user(platform)
    assert user.password_hash is not None
    assert users.verify_password(user.password_hash, PASSWORD)
    assert user.invite_hash is None
    for answer in (replayed, reopened):
        assert answer.status_code == 400
        assert "invitation link is not valid" in answer.text
    async with platform.db.session() as session:
        accepted_events = select(AuditEventRow).where(AuditEventRow.action == "auth.invite_accepted")
        events = list(await session.scalars(accepted_events))
    assert [(e.actor_id, e.outcome, e.transport) for e in events] == [(user.id, "allowed", "web")]
    assert PASSWORD not in str(events[0].arguments)


async def test_a_form_without_its_cookie_or_with_unequal_passwords_changes_nothing(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    token = await _invite(platform)
    form = await _form(client, token)

    unequal = await client.post("/invite", data={**form, "password_again": "something else entirely"})
    short = await client.post("/invite", data={**form, "password": "short", "password_again": "short"})
    client.cookies.clear()
    forged = await client.post("/invite", data=form)

    assert unequal.status_code == 400
    assert "do not match" in unequal.text
    assert short.status_code == 400
    assert forged.status_code == 400
    assert "did not come from the invitation link" in forged.text
    user = await _user(platform)
    assert user.password_hash is None
    assert user.invite_hash is not None  # the link still works


async def test_an_unknown_invitation_is_refused_without_a_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/invite", params={"token": "not-a-real-invitation"})

    assert page.status_code == 400
    assert "invitation link is not valid" in page.text
    assert "<form" not in page.text


async def test_a_removed_or_disabled_persons_invitation_no_longer_works(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Platform
) -> None:
    token = await _invite(platform)
    form = await _form(client, token)
    removed = await client.delete(f"{ORG}/members/nia@acme.test", headers=admin)
    assert removed.status_code == 200, removed.text

    reopened = await client.get("/invite", params={"token": token})
    submitted = await client.post("/invite", data=form)

    assert reopened.status_code == 400
    assert "invitation link is not valid" in reopened.text
    assert submitted.status_code == 400
    assert (await _user(platform)).password_hash is None

    second = await _invite(platform)  # invited again, then disabled
    async with platform.db.session() as session:
        await session.execute(update(User).where(User.email == "nia@acme.test").values(disabled=True))
    assert (await client.get("/invite", params={"token": second})).status_code == 400
