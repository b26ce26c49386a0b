"""The console in headless Chromium against a live server with a real executor.

Set ``TESTGATE_SCREENSHOTS=docs/screenshots`` to save screenshots of the main pages while these run.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.web.conftest import PASSWORD, Live, MakeUser

from testgate.access.principal import Permission, Role
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.store.audit import AuditEventRow

pytestmark = pytest.mark.browser

Events = Callable[..., Awaitable[list[AuditEventRow]]]
TIMEOUT = 30_000  # ms: a step of these tests waits at most this long
VIEWPORT = {"width": 1360, "height": 900}


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def open_console(browser: Any, live: Live, email: str, **options: Any) -> tuple[Any, Any, list[str]]:
    """A new browser context signed in as ``email`` through the real sign-in form; also its console errors."""
    context = await browser.new_context(viewport=VIEWPORT, **options)
    context.set_default_timeout(TIMEOUT)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(live.ui("/workflows"))
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click('button[type="submit"]')
    await expect(page).to_have_url(live.ui("/workflows"))
    return context, page, errors


async def shoot(page: Any, folder: Path | None, name: str) -> None:
    if folder is not None:
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def history(live: Live, call: Call) -> None:
    """Earlier runs of ``gated``, passing and failing, for the chart and the flaky-test highlight."""
    for index in range(8):
        failing = index % 3 == 0
        failure = '<failure message="ZeroDivisionError">trace</failure>' if failing else ""
        junit = (
            f'<testsuite name="unit" tests="2" time="{1 + index % 4}.5"><testcase classname="calc" name="adds"/>'
            f'<testcase classname="calc" name="divides" time="{1 + index % 4}">{failure}</testcase></testsuite>'
        )
        args = {"workflow": "gated", "files": [{"name": "junit.xml", "content": junit}]}
        await dispatch(live.platform, call, "results.upload", args)


async def test_a_person_runs_a_workflow_watches_its_log_arrive_live_and_opens_a_failed_tests_trace(
    live: Live, browser: Any, make_user: MakeUser, call: Call, tmp_path: Path, screenshots: Path | None
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    if screenshots is not None:
        await history(live, call)
    context, page, errors = await open_console(browser, live, "ada@example.com")
    await expect(page.locator("table.grid")).to_contain_text("team=qa")
    await shoot(page, screenshots, "workflows")
    await page.click("text=gated")
    gate = tmp_path / "gate"
    await page.fill('input[name="config.gate"]', str(gate))
    await page.fill('input[name="tags"]', "branch=main")
    await page.click("#run-form button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/ui/acme/dev/executions/[0-9a-z]{26}$"))
    log = page.locator("#log")
    await expect(log).to_contain_text("waiting for the gate")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#abort-form button")).to_be_visible()
    await page.evaluate("window.sameDocument = true")
    gate.touch()
    await expect(log).to_contain_text("the gate opened")
    assert await page.evaluate("window.sameDocument === true"), "the line arrived by reloading, not live"
    (tmp_path / "gate.done").touch()
    await expect(page.locator("#status")).to_have_text("failed")  # the page reloads once the run ends
    failed = page.locator("li.result.r-failed")
    await expect(failed).to_contain_text("calc.divides")
    await expect(failed.locator("pre.trace")).to_be_hidden()
    await failed.locator("summary").click()
    await expect(failed.locator("pre.trace")).to_contain_text('File "calc.py", line 7, in divides')
    await expect(page.locator("text=reports/junit.xml")).to_be_visible()
    await shoot(page, screenshots, "execution")
    if screenshots is not None:
        await page.click("text=gated")
        await shoot(page, screenshots, "workflow")
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    await context.close()


async def test_a_person_creates_copies_and_revokes_an_api_token(
    live: Live, browser: Any, make_user: MakeUser, screenshots: Path | None
) -> None:
    await make_user("ada@example.com", grants={"dev": Permission.RUN})
    permissions = ["clipboard-read", "clipboard-write"]
    context, page, _ = await open_console(browser, live, "ada@example.com", permissions=permissions)
    await page.click("nav >> text=API tokens")
    await page.fill('#new-token input[name="name"]', "ci")
    await page.select_option('select[name="env.dev"]', "run")
    await page.click("#new-token button[type=submit]")
    secret = (await page.locator("#secret").text_content() or "").strip()
    assert secret.startswith("tgp_")
    await page.click("button[data-copy=secret]")
    await expect(page.locator("button[data-copy=secret]")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    api = f"{live.base}/api/v1/organizations/acme/environments/dev/workflows"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}) as http:
        assert (await http.get(api)).status_code == 200
        await page.click("text=Back to API tokens")
        row = page.locator('tr[data-token="ci"]')
        await expect(row).to_contain_text("active")
        await expect(row).to_contain_text("dev: run")
        await shoot(page, screenshots, "tokens")
        assert secret not in await page.content()
        await row.locator("text=Revoke…").click()
        await expect(page.locator("p.question")).to_contain_text("Revoke token 'ci'")
        await page.click("button:has-text('Revoke token')")
        await expect(page.locator('tr[data-token="ci"]')).to_contain_text("revoked")
        assert (await http.get(api)).status_code == 401
    await context.close()


async def test_an_owner_filters_exports_and_verifies_the_audit_log(
    live: Live, browser: Any, make_user: MakeUser, screenshots: Path | None
) -> None:
    await make_user("root@example.com", role=Role.OWNER)
    context, page, _ = await open_console(browser, live, "root@example.com", accept_downloads=True)
    await page.click("nav >> text=Audit")
    await page.click("#verify")
    await expect(page.locator("#verification")).to_contain_text("The audit log verifies")
    await shoot(page, screenshots, "audit")
    await page.fill('input[name="action"]', "console.")
    await page.select_option('select[name="outcome"]', "allowed")
    await page.click("#audit-filters button[type=submit]")
    rows = page.locator("#events tbody tr")
    await expect(rows.first).to_contain_text("console.login")
    assert {await row.locator("td:nth-child(4)").text_content() for row in await rows.all()} == {"console.login"}
    for fmt, first in (("csv", "id,seq,"), ("jsonl", "{"), ("ocsf", "{")):
        async with page.expect_download() as started:
            await page.click(f"[data-export={fmt}]")
        download = await started.value
        text = await anyio.Path(await download.path()).read_text()
        assert text.startswith(first)
        assert "console.login" in text
        assert "workflow.list" not in text  # the filter applies to the export too
    await context.close()


async def test_a_reader_sees_no_run_abort_or_delete_control_and_is_refused_when_posting_anyway(
    live: Live, browser: Any, make_user: MakeUser, call: Call, tmp_path: Path, audit_events: Events
) -> None:
    await make_user("reader@example.com", grants={"dev": Permission.READ})
    gate = tmp_path / "gate"
    running = await dispatch(live.platform, call, "workflow.run", {"name": "gated", "config": {"gate": str(gate)}})
    case = await dispatch(live.platform, call, "testcase.create", {"name": "Checkout works"})
    context, page, _ = await open_console(browser, live, "reader@example.com")
    await page.goto(live.ui("/workflows/gated"))
    await expect(page.locator("h1")).to_have_text("gated")
    assert await page.locator("#run-form").count() == 0
    await page.goto(live.ui(f"/executions/{running.id}"))
    await expect(page.locator("#log")).to_contain_text("waiting for the gate")
    # Let the stream's own (audited) read finish before the next page's: concurrent audit appends
    # on SQLite can collide (reported to the audit owner).
    await expect(page.locator("#live")).to_have_text("live")
    assert await page.locator("#abort-form").count() == 0
    await page.goto(live.ui(f"/test-cases/{case.id}"))
    await expect(page.locator("h1")).to_have_text("Checkout works")
    assert await page.locator("#delete-case").count() == 0
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    for path in ("/workflows/gated/run", f"/executions/{running.id}/abort", f"/test-cases/{case.id}/delete"):
        answer = await context.request.post(live.ui(path), form={"csrf": csrf, "config.gate": str(gate)})
        assert answer.status == 403, path
        assert "Not allowed" in await answer.text()
    for action in ("workflow.run", "execution.abort", "testcase.delete"):
        denied = [e for e in await audit_events(action) if e.actor_name == "reader@example.com"]
        assert [(e.outcome, e.transport) for e in denied] == [("denied", "web")], action
    await dispatch(live.platform, call, "execution.abort", {"id": running.id})
    await context.close()


async def test_deleting_a_test_case_in_the_browser_asks_first(
    live: Live, browser: Any, make_user: MakeUser, call: Call
) -> None:
    await make_user("writer@example.com", grants={"dev": Permission.WRITE})
    case = await dispatch(live.platform, call, "testcase.create", {"name": "Refunds work"})
    context, page, _ = await open_console(browser, live, "writer@example.com")
    await page.click("nav >> text=Test cases")
    await page.click("text=Refunds work")
    await page.click("#delete-case")
    await expect(page.locator("p.question")).to_contain_text("Delete test case 'Refunds work'")
    await page.click("text=Cancel")
    await expect(page).to_have_url(live.ui(f"/test-cases/{case.id}"))
    await page.click("#delete-case")
    await page.click("button:has-text('Delete test case')")
    await expect(page).to_have_url(live.ui("/test-cases"))
    await expect(page.locator("main")).not_to_contain_text("Refunds work")
    await context.close()
