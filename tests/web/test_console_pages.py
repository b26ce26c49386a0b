"""The console in-process: sessions, CSRF, headers, confirmation, refusals, streams and downloads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from tests.web.conftest import BASE, PASSWORD, MakeUser, SignIn, hidden

from testgate.access.principal import Permission, Role
from testgate.app import create_app
from testgate.config import Settings
from testgate.oauth.settings import UpstreamSettings
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform import links, logs, tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.web.auth import safe_next

Events = Callable[..., Awaitable[list[AuditEventRow]]]
JUNIT = (
    '<testsuite name="u" tests="1" failures="1"><testcase classname="calc" name="divides">'
    '<failure message="boom">trace</failure></testcase></testsuite>'
)


async def _upload(platform: Platform, call: Call, workflow: str = "ci") -> Any:
    files = [{"name": "junit.xml", "content": JUNIT}]
    return await dispatch(platform, call, "results.upload", {"workflow": workflow, "files": files})


async def _case(platform: Platform, call: Call, name: str = "Checkout works") -> Any:
    return await dispatch(platform, call, "testcase.create", {"name": name, "labels": {"area": "checkout"}})


async def test_a_console_page_sends_a_browser_that_is_not_signed_in_to_the_sign_in_form(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/ui/acme/dev/executions?status=failed")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fui%2Facme%2Fdev%2Fexecutions%3Fstatus%3Dfailed"
    assert answer.headers["cache-control"] == "no-store"


async def test_signing_in_sets_an_httponly_samesite_lax_session_cookie_scoped_to_the_console(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    answer = await signed_in(client, "ada@example.com")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("testgate_console_session="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "Path=/ui" in cookie
    assert "SameSite=lax" in cookie
    assert "secure" not in attributes  # plain http here; https adds Secure
    (event,) = await audit_events("console.login")
    assert (event.outcome, event.actor_name, event.transport) == ("allowed", "ada@example.com", "web")


async def test_a_console_pages_operation_is_audited_with_the_request_id_address_and_user_agent(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    sent = {"X-Request-ID": "console-page-1", "User-Agent": "Mozilla/5.0 (console test)"}
    page = await client.get("/ui/acme/dev/workflows", headers=sent)
    assert page.status_code == 200
    [event] = [e for e in await audit_events("workflow.list") if e.request_id == "console-page-1"]
    assert (event.transport, event.actor_name) == ("web", "ada@example.com")
    assert (event.source_address, event.user_agent) == ("203.0.113.9", "Mozilla/5.0 (console test)")


async def test_a_wrong_password_is_refused_with_the_same_words_as_an_unknown_address_and_audited(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    wrong = await signed_in(client, "ada@example.com", "not the password at all")
    unknown = await signed_in(client, "nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "The email address or password is wrong." in wrong.text
    assert "The email address or password is wrong." in unknown.text
    assert "testgate_console_session" not in wrong.headers.get("set-cookie", "")
    assert [e.outcome for e in await audit_events("console.login")] == ["denied", "denied"]


async def test_the_sign_in_form_refuses_a_post_without_its_csrf_value(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    answer = await client.post("/login", data={"email": "ada@example.com", "password": PASSWORD, "csrf": "forged"})
    assert answer.status_code == 403
    assert "This form has expired" in answer.text


async def test_console_pages_carry_a_strict_content_security_policy_and_are_never_cached(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, workflows: None
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/workflows")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    for directive in (
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert " style=" not in page.text
    assert "gated" in page.text
    assert "team=qa" in page.text


async def test_a_form_posted_without_the_sessions_csrf_value_is_refused_and_nothing_runs(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, workflows: None, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    await signed_in(client, "ada@example.com")
    answer = await client.post("/ui/acme/dev/workflows/quick/run", data={"csrf": "x" * 43})
    assert answer.status_code == 403
    assert "This form has expired" in answer.text
    assert await audit_events("workflow.run") == []


async def test_signing_out_deletes_the_session_cookie(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, workflows: None, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/workflows")
    answer = await client.post("/ui/logout", data={"csrf": hidden(page.text, "csrf")})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"
    assert 'testgate_console_session=""' in answer.headers["set-cookie"]
    assert (await client.get("/ui/acme/dev/workflows")).status_code == 303
    assert [e.outcome for e in await audit_events("console.logout")] == ["allowed"]


# OWASP ASVS 4.0.3 V3.3.1: logout invalidates the session token on the server, not only the browser's copy.
async def test_signing_out_ends_the_session_on_the_server_so_a_copied_cookie_is_refused(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, workflows: None
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    copied = client.cookies.get("testgate_console_session")
    assert copied
    page = await client.get("/ui/acme/dev/workflows")
    assert page.status_code == 200
    assert (await client.post("/ui/logout", data={"csrf": hidden(page.text, "csrf")})).status_code == 303
    replayed = await client.get("/ui/acme/dev/workflows", headers={"cookie": f"testgate_console_session={copied}"})
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/login")
    await signed_in(client, "ada@example.com")  # signing in again starts a session that works
    assert (await client.get("/ui/acme/dev/workflows")).status_code == 200


async def test_one_persons_sign_out_leaves_another_persons_session_alone(
    app: Any, make_user: MakeUser, signed_in: SignIn, workflows: None
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await make_user("bob@example.com", grants={"dev": Permission.READ})
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=BASE) as ada,
        httpx.AsyncClient(transport=transport, base_url=BASE) as bob,
    ):
        await signed_in(ada, "ada@example.com")
        await signed_in(bob, "bob@example.com")
        page = await ada.get("/ui/acme/dev/workflows")
        await ada.post("/ui/logout", data={"csrf": hidden(page.text, "csrf")})
        assert (await ada.get("/ui/acme/dev/workflows")).status_code == 303
        assert (await bob.get("/ui/acme/dev/workflows")).status_code == 200


@pytest.mark.parametrize(
    ("target", "kept"),
    [
        ("/ui/acme/dev/executions?status=failed", True),
        ("/ui", True),
        ("https://evil.example/ui/", False),
        ("//evil.example/ui", False),
        ("/uix", False),
        ("/api/v1/organizations", False),
        ("/ui/\\evil", False),
    ],
)
def test_after_signing_in_the_browser_goes_only_to_a_console_page(target: str, kept: bool) -> None:
    assert safe_next(target) == (target if kept else "/ui")


async def test_every_link_build_dashboard_url_hands_out_is_served_by_the_console(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    workflows: None,
    platform: Platform,
    call: Call,
) -> None:
    await make_user("root@example.com", role=Role.ADMIN)
    await signed_in(client, "root@example.com")
    execution = await _upload(platform, call)
    case = await _case(platform, call)
    refs = {"workflow": "gated", "execution": execution.id, "test_case": case.id}
    for kind in ("workflows", "workflow", "executions", "execution", "test_cases", "test_case", "audit"):
        url = links.console_url(BASE, "acme", "dev", kind, refs.get(kind))  # type: ignore[arg-type]
        answer = await client.get(url.removeprefix(BASE))
        assert answer.status_code == 200, (kind, answer.text)


async def test_another_organizations_console_answers_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    assert (await client.get("/ui/other/dev/workflows")).status_code == 404
    assert (await client.get("/ui/acme/prod/workflows")).status_code == 404


async def test_deleting_a_test_case_without_its_confirmation_page_is_refused_and_audited(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    platform: Platform,
    call: Call,
    audit_events: Events,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.WRITE})
    await signed_in(client, "ada@example.com")
    case = await _case(platform, call)
    page = await client.get(f"/ui/acme/dev/test-cases/{case.id}")
    answer = await client.post(f"/ui/acme/dev/test-cases/{case.id}/delete", data={"csrf": hidden(page.text, "csrf")})
    assert answer.status_code == 409
    assert "confirmation page" in answer.text
    assert "elicitation" not in answer.text  # the MCP clients' wording is not for a person at a browser
    (event,) = await audit_events("testcase.delete")
    assert (event.outcome, event.confirmation, event.transport) == ("denied", "unavailable", "web")
    assert (await client.get(f"/ui/acme/dev/test-cases/{case.id}")).status_code == 200


async def test_deleting_a_test_case_after_its_confirmation_page_deletes_it(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    platform: Platform,
    call: Call,
    audit_events: Events,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.WRITE})
    await signed_in(client, "ada@example.com")
    case = await _case(platform, call)
    question = await client.get(f"/ui/acme/dev/test-cases/{case.id}/delete")
    assert "Delete test case &#39;Checkout works&#39;" in question.text
    fields = {"csrf": hidden(question.text, "csrf"), "confirm": hidden(question.text, "confirm")}
    answer = await client.post(f"/ui/acme/dev/test-cases/{case.id}/delete", data=fields)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/acme/dev/test-cases"
    (event,) = await audit_events("testcase.delete")
    assert (event.outcome, event.confirmation) == ("allowed", "accepted")
    assert (await client.get(f"/ui/acme/dev/test-cases/{case.id}")).status_code == 404


async def test_a_member_who_is_not_an_admin_is_refused_the_audit_log_and_the_refusal_is_audited(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.ADMIN})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/workflows")
    assert 'href="/ui/acme/dev/audit"' not in page.text
    answer = await client.get("/ui/acme/dev/audit")
    assert answer.status_code == 403
    assert (await client.get("/ui/acme/dev/audit/export?format=csv")).status_code == 403
    events = await audit_events("audit.list") + await audit_events("audit.export")
    assert [(e.outcome, e.transport) for e in events] == [("denied", "web"), ("denied", "web")]


async def test_the_audit_export_streams_csv_with_a_header_row_as_an_attachment(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("root@example.com", role=Role.OWNER)
    await signed_in(client, "root@example.com")
    answer = await client.get("/ui/acme/dev/audit/export?format=csv&action=console.")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith("attachment;")
    header, *rows = answer.text.splitlines()
    assert "action" in header
    assert any("console.login" in row for row in rows)


async def test_the_log_stream_sends_every_line_of_a_finished_execution_then_ends(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    workflows: None,
    executor: Any,
    platform: Platform,
    call: Call,
    audit_events: Events,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    run = await dispatch(platform, call, "workflow.run", {"name": "quick"})
    await dispatch(platform, call, "execution.wait", {"ids": [run.id], "timeout": 30})
    answer = await client.get(f"/ui/acme/dev/executions/{run.id}/logs/stream", headers={"Accept": "text/event-stream"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert "event: line" in answer.text
    assert "hello from quick" in answer.text
    assert answer.text.rstrip().endswith("event: end\ndata: {}")
    resumed = await client.get(f"/ui/acme/dev/executions/{run.id}/logs/stream", headers={"Last-Event-ID": "999"})
    assert "event: line" not in resumed.text
    assert {e.transport for e in await audit_events("execution.get")} == {"web"}


async def test_the_log_stream_of_an_execution_in_another_environment_is_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform, call: Call
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    assert (await client.get("/ui/acme/dev/executions/01JZZZZZZZZZZZZZZZZZZZZZZZ/logs/stream")).status_code == 404


async def test_executions_are_listed_newest_first_in_keyset_pages(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform, call: Call
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    for _ in range(27):
        await _upload(platform, call)
    first = await client.get("/ui/acme/dev/executions?status=failed&workflow=ci")
    assert first.status_code == 200
    assert "ci #27" in first.text
    assert "ci #2<" not in first.text
    next_href = hidden(first.text.replace('rel="next" href', 'name="next" value'), "next")
    second = await client.get("/ui/acme/dev/executions" + next_href)
    assert "ci #2<" in second.text
    assert "ci #1<" in second.text
    assert "ci #27" not in second.text
    assert 'rel="next"' not in second.text
    typo = await client.get("/ui/acme/dev/executions?workflow=cj")
    assert typo.status_code == 200  # the filter form stays, saying why nothing is listed
    assert "workflow &#39;cj&#39; not found in environment &#39;dev&#39;" in typo.text
    assert 'value="cj"' in typo.text


async def test_an_artifact_downloads_as_a_sandboxed_attachment_after_an_audited_read(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    workflows: None,
    executor: Any,
    platform: Platform,
    call: Call,
    audit_events: Events,
    tmp_path: Any,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    gate = tmp_path / "gate"
    gate.touch()
    (tmp_path / "gate.done").touch()
    run = await dispatch(platform, call, "workflow.run", {"name": "gated", "config": {"gate": str(gate)}})
    await dispatch(platform, call, "execution.wait", {"ids": [run.id], "timeout": 30})
    base = f"/ui/acme/dev/executions/{run.id}/artifacts/reports/junit.xml"
    preview = await client.get(base)
    assert preview.status_code == 200
    assert "ZeroDivisionError" in preview.text
    download = await client.get(base + "?download=1")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="junit.xml"'
    assert download.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert download.content.startswith(b"<testsuite")
    assert [e.outcome for e in await audit_events("artifact.read")] == ["allowed", "allowed"]


async def test_the_environment_switcher_lists_only_the_environments_a_person_can_see(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, platform: Platform
) -> None:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        await tenancy.create_environment(session, org, "prod", "Production")
        await tenancy.create_environment(session, org, "staging", "Staging")
    await make_user("ada@example.com", grants={"dev": Permission.READ, "staging": Permission.RUN})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/executions")
    assert 'href="/ui/acme/staging/executions"' in page.text
    assert 'href="/ui/acme/dev/executions"' in page.text
    assert "/ui/acme/prod/" not in page.text
    assert (await client.get("/ui/acme/staging/executions")).status_code == 200


async def test_a_runner_aborts_a_running_execution_from_its_page(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    workflows: None,
    executor: Any,
    platform: Platform,
    call: Call,
    tmp_path: Any,
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    await signed_in(client, "ada@example.com")
    run = await dispatch(platform, call, "workflow.run", {"name": "gated", "config": {"gate": str(tmp_path / "g")}})
    page = await client.get(f"/ui/acme/dev/executions/{run.id}")
    assert 'id="abort-form"' in page.text
    assert f'data-stream="/ui/acme/dev/executions/{run.id}/logs/stream"' in page.text
    answer = await client.post(f"/ui/acme/dev/executions/{run.id}/abort", data={"csrf": hidden(page.text, "csrf")})
    assert answer.status_code == 303
    after = await client.get(answer.headers["location"])
    assert 'id="status">aborted<' in after.text
    assert 'id="abort-form"' not in after.text
    assert "data-stream" not in after.text


async def test_rotating_a_token_shows_the_new_secret_once_and_voids_the_old_one(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    await signed_in(client, "ada@example.com")
    tokens_page = await client.get("/ui/acme/dev/tokens")
    csrf = hidden(tokens_page.text, "csrf")
    once = hidden(tokens_page.text, "once")
    created = await client.post(
        "/ui/acme/dev/tokens", data={"csrf": csrf, "once": once, "name": "ci", "env.dev": "read"}
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    old = re.search(r'<code id="secret">(tgp_[^<]+)</code>', created.text)
    assert old
    listed = await client.get("/ui/acme/dev/tokens")
    assert old[1] not in listed.text
    token_id = re.search(r'/tokens/([0-9a-z]{26})/rotate"', listed.text)
    assert token_id
    rotate = {"csrf": csrf, "once": hidden(listed.text.split(f"/tokens/{token_id[1]}/rotate")[1], "once"), "grace": ""}
    rotated = await client.post(f"/ui/acme/dev/tokens/{token_id[1]}/rotate", data=rotate)
    assert rotated.status_code == 200
    new = re.search(r'<code id="secret">(tgp_[^<]+)</code>', rotated.text)
    assert new
    assert new[1] != old[1]
    assert "The previous secret is void." in rotated.text
    api = "/api/v1/organizations/acme/environments/dev/workflows"
    assert (await client.get(api, headers={"Authorization": f"Bearer {old[1]}"})).status_code == 401
    assert (await client.get(api, headers={"Authorization": f"Bearer {new[1]}"})).status_code == 200


async def test_a_member_cannot_give_a_token_more_than_they_hold_and_the_refusal_is_audited(
    client: httpx.AsyncClient, make_user: MakeUser, signed_in: SignIn, audit_events: Events
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    page = await client.get("/ui/acme/dev/tokens")
    assert "<option>run</option>" not in page.text
    fields = {"csrf": hidden(page.text, "csrf"), "once": hidden(page.text, "once"), "name": "ci", "env.dev": "write"}
    answer = await client.post("/ui/acme/dev/tokens", data=fields)
    assert answer.status_code == 403
    assert [(e.outcome, e.transport) for e in await audit_events("token.create")] == [("denied", "web")]


async def test_over_https_every_console_cookie_is_secure(app: Any, make_user: MakeUser, signed_in: SignIn) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8443") as http:
        answer = await signed_in(http, "ada@example.com")
        page = await http.get("/ui/acme/dev/workflows")
    cookies = answer.headers.get_list("set-cookie") + page.headers.get_list("set-cookie")
    assert {c.split("=")[0] for c in cookies} == {"testgate_console_session", "testgate_console_csrf"}
    assert all("; secure" in c.lower() and "; httponly" in c.lower() for c in cookies)


async def test_the_sign_in_page_offers_single_sign_on_when_a_provider_is_configured(
    settings: Settings, platform: Platform, client: httpx.AsyncClient
) -> None:
    assert 'id="sso"' not in (await client.get("/login")).text
    upstream = UpstreamSettings(issuer="http://127.0.0.1:9/", client_id="testgate", client_secret="s", name="Dex")
    configured = settings.model_copy(update={"oauth": settings.oauth.model_copy(update={"upstream": upstream})})
    platform.settings = configured
    transport = httpx.ASGITransport(app=create_app(configured, platform=platform))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        page = await http.get("/login?next=/ui/acme/dev/executions")
    assert "Sign in with Dex" in page.text
    assert 'href="/oauth/sso/start?next=%2Fui%2Facme%2Fdev%2Fexecutions"' in page.text


async def test_the_log_stream_ends_once_its_reader_loses_access_while_the_run_goes_on(
    client: httpx.AsyncClient,
    make_user: MakeUser,
    signed_in: SignIn,
    workflows: None,
    executor: Any,
    platform: Platform,
    call: Call,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Permissions are checked on every call; a stream that lasts as long as a run is checked again while it lasts."""
    from testgate.web import stream

    monkeypatch.setattr(stream, "RECHECK", 0.2)
    await make_user("ada@example.com", grants={"dev": Permission.READ})
    await signed_in(client, "ada@example.com")
    gate = tmp_path / "gate"
    run = await dispatch(platform, call, "workflow.run", {"name": "gated", "config": {"gate": str(gate)}})
    try:
        following = asyncio.create_task(client.get(f"/ui/acme/dev/executions/{run.id}/logs/stream"))
        with anyio.fail_after(20):
            await _logged(platform, call, run.id, "waiting for the gate")
        assert not following.done()  # the run is waiting at its gate, and the stream follows it
        await dispatch(platform, call, "member.grant", {"user": "ada@example.com", "environments": {"dev": "none"}})
        with anyio.fail_after(20):
            answer = await following
        assert answer.status_code == 200
        assert answer.text.rstrip().endswith("event: end\ndata: {}")
        detail = await dispatch(platform, call, "execution.get", {"id": run.id})
        assert detail.status == "running"  # the stream ended for its reader, not because the run did
    finally:
        gate.touch()
        (tmp_path / "gate.done").touch()
        await dispatch(platform, call, "execution.wait", {"ids": [run.id], "timeout": 30})


async def _logged(platform: Platform, call: Call, execution_id: str, text: str) -> None:
    """Return once the execution's log has a line containing ``text`` (bounded by the caller's timeout)."""
    async for line in logs.follow(platform, execution_id, 0):
        if text in line.text:
            return
