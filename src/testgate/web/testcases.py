"""Test case pages: list, detail, create, edit, and delete after a confirmation page.

    GET  /ui/{org}/{env}/test-cases                  testcase.list (text, selector, cursor)
    GET  /ui/{org}/{env}/test-cases/new              the form;  POST /test-cases: testcase.create
    GET  /ui/{org}/{env}/test-cases/{id}             testcase.get
    GET  /ui/{org}/{env}/test-cases/{id}/edit        the form;  POST: testcase.update
    GET  /ui/{org}/{env}/test-cases/{id}/delete      the confirmation page (testcase.get)
    POST /ui/{org}/{env}/test-cases/{id}/delete      testcase.delete, confirmed only with the page's value

Deleting is destructive: dispatch asks for confirmation, and the console answers "accepted" only for a form
carrying the value its confirmation page handed out, so a post that skipped the page is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from testgate.access.principal import Permission
from testgate.operations.models import Deleted
from testgate.operations.testcases import Case, CaseList
from testgate.web import forms
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
CaseId = Annotated[str, Path(max_length=26)]
Filter = Annotated[str, Query(max_length=500)]
PRIORITIES = ("blocker", "critical", "normal", "minor", "trivial")
TEXT_FIELDS = ("description", "precondition", "expected_result", "automated_test", "workflow_name")
DELETE = "testcase.delete"


def steps_of(text: str) -> list[dict[str, str]]:
    """One step per line: ``action => expected result`` (the expected part is optional)."""
    steps = []
    for line in text.splitlines():
        action, _, expected = line.partition("=>")
        if action.strip():
            steps.append({"action": action.strip(), "expected": expected.strip()})
    return steps


def steps_text(case: Case) -> str:
    return "\n".join(f"{s.action} => {s.expected}" if s.expected else s.action for s in case.steps)


def case_args(fields: Mapping[str, str]) -> dict[str, Any]:
    """The operation's arguments from the form (every field is sent: an empty one clears it)."""
    args: dict[str, Any] = {name: fields.get(name, "").strip() for name in TEXT_FIELDS}
    args["name"] = fields.get("name", "").strip()
    args["priority"] = fields.get("priority") or "normal"
    args["labels"] = forms.pairs(fields.get("labels", ""), "labels")
    args["steps"] = steps_of(fields.get("steps", ""))
    return args


@router.get("/test-cases", response_class=HTMLResponse)
async def cases(c: Con, text: Filter = "", selector: Filter = "", cursor: Filter = "") -> HTMLResponse:
    """Documented test cases, filtered by text or labels, 50 a page."""
    args: dict[str, Any] = forms.optional({"text": text, "selector": selector}, "text", "selector")
    listed = await c.run(CaseList, "testcase.list", args | ({"cursor": cursor} if cursor else {}))
    more = urlencode({**args, "cursor": listed.next_cursor}) if listed.next_cursor else None
    return c.page(
        "cases.html",
        title="Test cases",
        section="test-cases",
        cases=listed.test_cases,
        text=text,
        selector=selector,
        next_page=f"?{more}" if more else None,
        can_write=c.can(Permission.WRITE),
    )


def _form(c: Console, case: Case | None, *, action: str) -> HTMLResponse:
    return c.page(
        "case_form.html",
        title=f"Edit {case.name}" if case else "New test case",
        section="test-cases",
        case=case,
        action=action,
        priorities=PRIORITIES,
        labels=forms.pairs_text(case.labels) if case else "",
        steps=steps_text(case) if case else "",
    )


@router.get("/test-cases/new", response_class=HTMLResponse)
async def new_case(c: Con) -> HTMLResponse:
    """The form for a new test case."""
    return _form(c, None, action=c.url("test_cases"))


@router.post("/test-cases")
async def create_case(c: Con) -> RedirectResponse:
    """Create a test case (write permission)."""
    created = await c.run(Case, "testcase.create", case_args(await c.form()))
    return RedirectResponse(c.url("test_case", created.id), status_code=303)


@router.get("/test-cases/{id}", response_class=HTMLResponse)
async def case(c: Con, id: CaseId) -> HTMLResponse:
    """One test case with its steps."""
    found = await c.run(Case, "testcase.get", {"id": id})
    return c.page("case.html", title=found.name, section="test-cases", case=found, can_write=c.can(Permission.WRITE))


@router.get("/test-cases/{id}/edit", response_class=HTMLResponse)
async def edit_case(c: Con, id: CaseId) -> HTMLResponse:
    """The form to change a test case."""
    found = await c.run(Case, "testcase.get", {"id": id})
    return _form(c, found, action=f"{c.url('test_case', found.id)}/edit")


@router.post("/test-cases/{id}/edit")
async def update_case(c: Con, id: CaseId) -> RedirectResponse:
    """Save a test case's fields (write permission)."""
    args = case_args(await c.form())
    updated = await c.run(Case, "testcase.update", {**args, "id": id, "name": args["name"] or None})
    return RedirectResponse(c.url("test_case", updated.id), status_code=303)


@router.get("/test-cases/{id}/delete", response_class=HTMLResponse)
async def confirm_delete(c: Con, id: CaseId) -> HTMLResponse:
    """Ask before deleting: the only page that hands out the value the delete form needs."""
    found = await c.run(Case, "testcase.get", {"id": id})
    return c.page(
        "confirm.html",
        title="Delete test case?",
        section="test-cases",
        question=f"Delete test case '{found.name}' from environment '{c.env.slug}'? This cannot be undone.",
        action=f"{c.url('test_case', found.id)}/delete",
        confirm=c.confirmation(DELETE, found.id),
        button="Delete test case",
        cancel=c.url("test_case", found.id),
    )


@router.post("/test-cases/{id}/delete")
async def delete_case(c: Con, id: CaseId) -> RedirectResponse:
    """Delete the test case the person confirmed; without the confirmation page's value dispatch refuses."""
    fields = await c.form()
    await c.run(Deleted, DELETE, {"id": id}, confirm=c.confirmer(fields, DELETE, id))
    return RedirectResponse(c.url("test_cases"), status_code=303)
