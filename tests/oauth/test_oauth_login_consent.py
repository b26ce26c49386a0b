"""Sign-in with backoff, CSRF on every form, the browser session, and consent remembered and revoked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from testgate.access.verifier import verify_bearer
from testgate.errors import Unauthenticated
from testgate.oauth import browser, pages
from testgate.oauth.login import LoginFailed, login_user
from testgate.oauth.settings import OAuthSettings
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.oauth import Consent
from testgate.store.tenancy import User

MCP = "http://127.0.0.1:8080/organizations/acme/environments/dev/mcp"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def oauth_settings() -> OAuthSettings:
    return OAuthSettings(login_free_failures=2, login_backoff_base=60)


@pytest.fixture
async def client_id(flow: Any, make_user: Any) -> str:
    await make_user()
    return str((await flow.register())["client_id"])


async def sign_in(flow: Any, client_id: str, email: str, password: str) -> httpx.Response:
    return await flow.login(await flow.authorize(flow.params(client_id)), email, password)


# OWASP authentication: failures don't tell whether the account exists; repeated failures back off.
async def test_failed_sign_ins_read_the_same_and_lock_the_account_out(flow: Any, client_id: str) -> None:
    unknown = await sign_in(flow, client_id, "nobody@example.com", PASSWORD)
    wrong = await sign_in(flow, client_id, "ada@example.com", "not the password!")
    assert unknown.status_code == wrong.status_code == 401
    assert "The email address or password is wrong." in unknown.text
    assert "The email address or password is wrong." in wrong.text
    await sign_in(flow, client_id, "ada@example.com", "not the password!")
    # Locked: even the right password is refused until the backoff ends, with no hint about the password.
    locked = await sign_in(flow, client_id, "ada@example.com", PASSWORD)
    assert locked.status_code == 401
    assert "too many failed sign-ins" in locked.text.lower()


async def test_a_source_address_backs_off_across_accounts(platform: Platform, make_user: Any) -> None:
    rules = OAuthSettings(login_free_failures=1, login_backoff_base=60)
    for n in range(5):
        async with platform.db.sessions() as session:
            with pytest.raises(LoginFailed, match="wrong"):
                await login_user(session, f"user{n}@example.com", "guess guess guess", "198.51.100.9", policy=rules)
            await session.commit()
    await make_user("real@example.com")
    async with platform.db.sessions() as session:
        with pytest.raises(LoginFailed, match="too many"):
            await login_user(session, "real@example.com", PASSWORD, "198.51.100.9", policy=rules)
        # Another address is not affected.
        assert (await login_user(session, "real@example.com", PASSWORD, "198.51.100.10", policy=rules)).email


async def test_a_disabled_user_cannot_sign_in(flow: Any, client_id: str, platform: Platform) -> None:
    async with platform.db.session() as session:
        await session.execute(update(User).values(disabled=True))
    response = await sign_in(flow, client_id, "ada@example.com", PASSWORD)
    assert response.status_code == 401
    assert "The email address or password is wrong." in response.text


async def test_signing_in_sets_a_hardened_session_cookie_and_audits(
    flow: Any, client_id: str, platform: Platform
) -> None:
    response = await sign_in(flow, client_id, "ada@example.com", PASSWORD)
    assert response.status_code == 303
    assert response.headers["location"].startswith("authorize?")
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(browser.SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/oauth" in cookie
    async with platform.db.session() as session:
        outcomes = set(
            await session.scalars(select(AuditEventRow.outcome).where(AuditEventRow.action == "oauth.login"))
        )
    assert outcomes == {"allowed"}


# CSRF: a form posted without this browser's nonce-bound value is refused (OWASP CSRF, double submit).
async def test_forms_without_their_csrf_value_are_refused(flow: Any, client_id: str) -> None:
    page = await flow.authorize(flow.params(client_id))
    request = page.text.split('name="request" value="')[1].split('"')[0]
    forged = {"request": request, "csrf": "forged", "email": "ada@example.com", "password": PASSWORD}
    assert (await flow.http.post("/oauth/login", data=forged)).status_code == 400
    consent_page = await flow.http.get("/oauth/" + (await flow.login(page, "ada@example.com")).headers["location"])
    forged = {"request": request, "csrf": "forged", "decision": "allow"}
    response = await flow.http.post("/oauth/authorize", data=forged)
    assert response.status_code == 400
    assert "location" not in response.headers
    # The login form's value does not work on the consent form either (each form has its own purpose).
    login_csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    response = await flow.http.post("/oauth/authorize", data={"request": request, "csrf": login_csrf})
    assert response.status_code == 400
    assert "Allow" in consent_page.text


# RFC 6749 §4.1.2.1: a person who declines sends the client access_denied.
async def test_denying_consent_redirects_access_denied(flow: Any, client_id: str) -> None:
    page = await flow.authorize(flow.params(client_id))
    consent = await flow.http.get("/oauth/" + (await flow.login(page, "ada@example.com")).headers["location"])
    response = await flow.consent(consent, "deny")
    assert response.status_code == 303
    assert "error=access_denied" in response.headers["location"]


async def test_a_remembered_consent_skips_the_page_until_more_is_asked(flow: Any, client_id: str) -> None:
    await flow.code(client_id)
    again = await flow.authorize(flow.params(client_id, scope="testgate:read"))
    assert again.status_code == 302
    assert "code=" in again.headers["location"]
    more = await flow.authorize(flow.params(client_id, scope="testgate:write"))
    assert more.status_code == 200
    assert "testgate:write" in more.text
    forced = await flow.authorize(flow.params(client_id, scope="testgate:read", prompt="consent"))
    assert forced.status_code == 200


# OWASP ASVS 4.0.3 V3.3.1: signing out (in the console) ends the authorization pages' session on the
# server too: the browser's cookie, still held, no longer signs anyone in.
async def test_a_sign_out_ends_the_authorization_pages_session_of_that_person(
    flow: Any, client_id: str, platform: Platform
) -> None:
    await flow.code(client_id)
    assert flow.http.cookies.get(browser.SESSION_COOKIE)
    signed_in = await flow.authorize(flow.params(client_id, prompt="none"))
    assert "code=" in signed_in.headers["location"]
    async with platform.db.session() as session:
        user = await session.scalar(select(User).where(User.email == "ada@example.com"))
    assert user is not None
    await browser.sign_out(platform.db, user.id)
    assert flow.http.cookies.get(browser.SESSION_COOKIE)  # the cookie is still sent
    after = await flow.authorize(flow.params(client_id, prompt="none"))
    assert after.status_code == 302
    assert "error=login_required" in after.headers["location"]
    again = await flow.code(client_id)  # signing in again starts a session that works
    assert again


async def test_prompt_none_without_a_session_answers_login_required(flow: Any, client_id: str) -> None:
    response = await flow.authorize(flow.params(client_id, prompt="none"))
    assert response.status_code == 302
    assert "error=login_required" in response.headers["location"]


async def test_a_member_without_access_to_the_environment_gets_access_denied(flow: Any, make_user: Any) -> None:
    await make_user("stranger@example.com", grants={})
    client_id = (await flow.register())["client_id"]
    page = await flow.login(await flow.authorize(flow.params(client_id)), "stranger@example.com")
    response = await flow.http.get("/oauth/" + page.headers["location"])
    assert response.status_code == 302
    assert "error=access_denied" in response.headers["location"]


async def test_revoking_a_consent_revokes_its_tokens(flow: Any, client_id: str, platform: Platform, app: Any) -> None:
    tokens = await flow.tokens(client_id)
    async with platform.db.session() as session:
        consent = (await session.scalars(select(Consent))).one()
        user_id = consent.user_id
    key = await browser.mac_key(platform.db)
    nonce = flow.http.cookies[browser.CSRF_COOKIE]
    token = browser.csrf_token(key, nonce, pages.revoke_purpose(user_id))
    assert (await flow.http.post(f"/oauth/consents/{consent.id}/revoke", data={"csrf": "x"})).status_code == 400
    response = await flow.http.post(f"/oauth/consents/{consent.id}/revoke", data={"csrf": token})
    assert response.status_code == 200
    with pytest.raises(Unauthenticated, match="revoked"):
        await verify_bearer(platform, tokens["access_token"], source=None, resource=MCP)
    assert (await flow.refresh(client_id, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    # Revoked consent is asked for again.
    assert (await flow.authorize(flow.params(client_id))).status_code == 200
    flow.sign_out()
    other = await flow.http.post(f"/oauth/consents/{consent.id}/revoke", data={"csrf": token})
    assert other.status_code == 401


async def test_a_sign_in_is_audited_in_the_persons_own_organizations_not_the_one_the_request_names(
    flow: Any, client_id: str, platform: Platform
) -> None:
    # A globex member signing in through an authorization request for acme's environment: their address,
    # id and source address went into acme's audit log, and globex's showed nothing (a brute force on a
    # globex account was invisible to globex's admins). An address nobody has goes to the default's.
    from testgate.access.users import hash_password
    from testgate.platform import tenancy
    from testgate.store.tenancy import Membership

    async with platform.db.session() as session:
        globex = (await tenancy.bootstrap(session, "globex", "dev", issue_setup_token=False)).organization
        boss = User(email="boss@globex.test", name="boss", password_hash=hash_password(PASSWORD))
        session.add(boss)
        await session.flush()
        session.add(Membership(organization_id=globex.id, user_id=boss.id, role="owner"))
        acme = await tenancy.organization_by_slug(session, "acme")

    await sign_in(flow, client_id, "nobody@nowhere.test", "whatever")
    await sign_in(flow, client_id, "boss@globex.test", "not the password")
    await sign_in(flow, client_id, "boss@globex.test", PASSWORD)

    async with platform.db.session() as session:
        rows = await session.execute(
            select(AuditEventRow.organization_id, AuditEventRow.actor_name, AuditEventRow.outcome)
            .where(AuditEventRow.action == "oauth.login")
            .order_by(AuditEventRow.id)
        )
        logins = [(org, name, outcome) for org, name, outcome in rows]
    assert logins == [
        (acme.id, "nobody@nowhere.test", "denied"),  # acme is this server's default organization
        (globex.id, "boss@globex.test", "denied"),
        (globex.id, "boss@globex.test", "allowed"),
    ]
