"""Inputs at the edges of what a field can hold: each is answered with a problem (RFC 9457), never a 500.

Found by a walkthrough: a date without an offset, integers no 64-bit column holds, durations past the year
9999, label selectors in syntax testgate does not support, unbounded test-case labels.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

ORG = "/api/v1/organizations/acme"
API = f"{ORG}/environments/dev"
PROBLEM = "application/problem+json"
HUGE = "99999999999999999999"  # more than 2**63 - 1: no SQLite INTEGER or PostgreSQL BIGINT holds it


def _cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


async def _problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    text = json.dumps(body)
    for word in words:
        assert word in text, (word, body)
    return body


async def test_a_time_without_an_offset_is_utc(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for since in ("2026-12-07", "2026-12-07T00:00:00", "2026-12-07T00:00:00+02:00"):
        response = await client.get(f"{API}/executions", params={"since": since}, headers=admin)
        assert response.status_code == 200, (since, response.text)
        assert response.json() == {"executions": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        (f"{API}/executions/smoke%23{HUGE}", {}, 404, [f"'smoke#{HUGE}' not found"]),
        (f"{API}/executions/smoke%231/logs", {"start": HUGE}, 422, ["start"]),
        (f"{API}/executions/smoke%231/logs", {"end": HUGE}, 422, ["end"]),
        (f"{API}/executions/smoke%231/logs", {"step": HUGE}, 422, ["step"]),
        (f"{ORG}/audit", {"cursor": _cursor(int(HUGE))}, 422, ["cursor is not valid"]),
        (f"{ORG}/audit", {"cursor": _cursor(-int(HUGE))}, 422, ["cursor is not valid"]),
        (f"{ORG}/audit", {"cursor": _cursor("12")}, 422, ["cursor is not valid"]),
    ],
)
async def test_an_integer_no_column_holds_is_refused_not_sent_to_the_database(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, params: dict[str, str], status: int, words: list[str]
) -> None:
    await _problem(await client.get(path, params=params, headers=admin), status, *words)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "x", "expires": "P99999999D"}, ["after the year 9999"]),
        ({"name": "x", "expires": "PT99999999999H"}, ["longer than any expiry"]),
        ({"name": "x", "expires": f"PT{HUGE}S"}, ["longer than any expiry"]),
    ],
)
async def test_an_expiry_past_the_calendar_is_invalid_input(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, str], words: list[str]
) -> None:
    await _problem(await client.post(f"{ORG}/tokens", json=body, headers=admin), 422, "expires", *words)
    listed = await client.get(f"{ORG}/tokens", headers=admin)
    assert [t["name"] for t in listed.json()["tokens"]] == ["test-admin"]  # nothing was created


@pytest.mark.parametrize("selector", ["area!=auth", "area==auth", "!!!", "a in (b", "a<b", "k=" + "v" * 64])
async def test_a_selector_testgate_cannot_read_is_refused_rather_than_matching_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], selector: str
) -> None:
    for path in (f"{API}/test-cases", f"{API}/workflows"):
        response = await client.get(path, params={"selector": selector}, headers=admin)
        await _problem(response, 422, "not 'key' or 'key=value'")


async def test_a_selector_of_keys_and_values_still_selects(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Callable[..., Awaitable[httpx.Response]]
) -> None:
    await create_workflow("smoke")
    for selector in ("", "team", "team=qa", " team = qa , smoke/suite.v2 "):
        response = await client.get(f"{API}/workflows", params={"selector": selector}, headers=admin)
        assert response.status_code == 200, (selector, response.text)


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        ({"bad key!": "v"}, ["label key 'bad key!' is not valid"]),
        ({"area": "v" * 64}, ["longer than 63 characters"]),
        ({f"k{i}": "v" for i in range(51)}, ["at most 50 labels"]),
    ],
)
async def test_test_case_labels_follow_the_rules_of_workflow_labels(
    client: httpx.AsyncClient, admin: dict[str, str], labels: dict[str, str], words: list[str]
) -> None:
    created = await client.post(f"{API}/test-cases", json={"name": "login", "labels": {"area": "auth"}}, headers=admin)
    assert created.status_code == 201, created.text
    case = created.json()
    refused = await client.post(f"{API}/test-cases", json={"name": "y", "labels": labels}, headers=admin)
    await _problem(refused, 422, "labels", *words)
    patched = await client.patch(f"{API}/test-cases/{case['id']}", json={"labels": labels}, headers=admin)
    await _problem(patched, 422, "labels", *words)
    kept = await client.get(f"{API}/test-cases/{case['id']}", headers=admin)
    assert kept.json()["labels"] == {"area": "auth"}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (f"{API}/test-cases", "text/plain"),
        (f"{API}/test-cases", "application/x-www-form-urlencoded"),  # curl -d
        (f"{ORG}/tokens", "application/x-www-form-urlencoded"),
        (f"{ORG}/tokens", None),
    ],
)
async def test_a_json_route_answers_a_body_of_another_type_with_415(
    client: httpx.AsyncClient, admin: dict[str, str], path: str, content_type: str | None
) -> None:
    body = json.dumps({"name": "login"})
    headers = {**admin, **({"Content-Type": content_type} if content_type else {})}
    response = await client.post(path, content=body, headers=headers)
    await _problem(response, 415, "send application/json")


async def test_a_json_route_takes_json_by_any_json_media_type(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    kinds = ("application/json", "application/json; charset=utf-8", "application/vnd.api+json")
    for number, content_type in enumerate(kinds):
        headers = {**admin, "Content-Type": content_type}
        body = json.dumps({"name": f"login-{number}"})
        response = await client.post(f"{API}/test-cases", content=body, headers=headers)
        assert response.status_code == 201, (content_type, response.text)


async def test_an_unknown_query_parameter_is_refused_rather_than_ignored(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    typo = await client.get(f"{API}/executions", params={"statuss": "failed"}, headers=admin)
    body = await _problem(typo, 422, "statuss", "unknown query parameter")
    assert "status" in body["errors"][0]["message"]  # the parameters it does take are named
    on_a_post = await client.post(f"{API}/test-cases", params={"x": "1"}, json={"name": "n"}, headers=admin)
    await _problem(on_a_post, 422, "unknown query parameter (this route takes: none)")
    fine = await client.get(f"{API}/executions", params={"status": "failed", "limit": "5"}, headers=admin)
    assert fine.status_code == 200, fine.text


async def test_a_patch_that_changes_nothing_leaves_the_test_case_as_it_was(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    case = (await client.post(f"{API}/test-cases", json={"name": "login", "priority": "minor"}, headers=admin)).json()
    for change in ({}, {"name": "login", "priority": "minor"}):
        same = await client.patch(f"{API}/test-cases/{case['id']}", json=change, headers=admin)
        assert same.status_code == 200, same.text
        assert same.json()["updated_at"] == case["updated_at"]
    moved = await client.patch(f"{API}/test-cases/{case['id']}", json={"priority": "critical"}, headers=admin)
    assert moved.json()["updated_at"] > case["updated_at"]


async def test_selectors_reach_what_is_stored_a_long_tag_value_and_a_test_case_labelled_before_checks(
    client: httpx.AsyncClient, admin: dict[str, str], platform: Any, create_workflow: Any, executor: Any
) -> None:
    from sqlalchemy import update

    from testgate.store.workflows import CaseRow

    await create_workflow("smoke", steps=[{"name": "s", "shell": "true"}])
    url = "https://ci.example.com/" + "x" * 60  # a tag value may be 255 characters, a label's 63
    run = await client.post(f"{API}/workflows/smoke/executions", json={"tags": {"build": url}}, headers=admin)
    assert run.status_code == 201, run.text
    by_tag = await client.get(f"{API}/executions", params={"tags": f"build={url}"}, headers=admin)
    assert [e["id"] for e in by_tag.json()["executions"]] == [run.json()["id"]]

    case = (await client.post(f"{API}/test-cases", json={"name": "legacy"}, headers=admin)).json()
    async with platform.db.session() as session:  # as stored before test-case labels were checked
        await session.execute(update(CaseRow).where(CaseRow.id == case["id"]).values(labels={"Jira Ticket": "T-1"}))
    found = await client.get(f"{API}/test-cases", params={"selector": "Jira Ticket=T-1"}, headers=admin)
    assert [c["id"] for c in found.json()["test_cases"]] == [case["id"]]


async def test_an_empty_body_passes_whatever_content_type_it_names(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Any, executor: Any
) -> None:
    await create_workflow("smoke", steps=[{"name": "s", "shell": "true"}])
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):  # curl -X POST -d ''
        headers = {**admin, "Content-Type": content_type}
        run = await client.post(f"{API}/workflows/smoke/executions", content=b"", headers=headers)
        assert run.status_code == 201, (content_type, run.text)


async def test_a_workflow_known_only_by_its_executions_lists_as_empty_under_other_filters(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    junit = '<testsuite name="s"><testcase classname="c" name="t"/></testsuite>'
    body = {"workflow": "nightly", "files": [{"name": "j.xml", "content": junit}]}
    assert (await client.post(f"{API}/results", json=body, headers=admin)).status_code == 201

    passed = await client.get(f"{API}/executions", params={"workflow": "nightly"}, headers=admin)
    failed = await client.get(f"{API}/executions", params={"workflow": "nightly", "status": "failed"}, headers=admin)

    assert len(passed.json()["executions"]) == 1
    assert failed.status_code == 200  # no definition, but executions under the name: an empty page, not a 404
    assert failed.json()["executions"] == []


async def test_a_body_sent_to_a_route_that_takes_none_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Any, platform: Any
) -> None:
    # README: an unknown field is refused, not ignored; a caller who sent {"reason": ...} with an abort
    # must not believe it was recorded.
    platform.executor = _Idle()
    await create_workflow("smoke", steps=[{"name": "s", "shell": "sleep 30"}])
    run = (await client.post(f"{API}/workflows/smoke/executions", headers=admin)).json()
    case = (await client.post(f"{API}/test-cases", json={"name": "login"}, headers=admin)).json()

    abort = await client.post(f"{API}/executions/{run['id']}/abort", json={"reason": "superseded"}, headers=admin)
    delete = await client.request("DELETE", f"{API}/test-cases/{case['id']}", json={"force": True}, headers=admin)
    text = await client.request("DELETE", f"{API}/test-cases/{case['id']}", content=b"please", headers=admin)
    revoke = await client.request("DELETE", f"{ORG}/tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV", json={"x": 1}, headers=admin)

    body = await _problem(abort, 422, "reason", "takes no request body")
    assert body["errors"] == [{"path": "reason", "message": "unknown field: this route takes no request body"}]
    await _problem(delete, 422, "force")
    await _problem(text, 422, "send none")
    await _problem(revoke, 422, "x")
    assert (await client.get(f"{API}/executions/{run['id']}", headers=admin)).json()["status"] == "queued"
    assert (await client.get(f"{API}/test-cases/{case['id']}", headers=admin)).status_code == 200
    for empty in (b"", b"{}", b"null"):  # what clients send when they mean "nothing"
        headers = {**admin, "Content-Type": "application/json"}
        fine = await client.post(f"{API}/executions/{run['id']}/abort", content=empty, headers=headers)
        assert fine.status_code in (200, 409), fine.text


class _Idle:
    """An executor that takes executions and never runs them."""

    async def start(self) -> None:
        return None

    async def submit(self, execution_id: str, secrets: Any) -> None:
        return None

    async def abort(self, execution_id: str) -> bool:
        return False

    async def close(self) -> None:
        return None


async def test_json_nested_past_the_parsers_depth_is_a_client_error_on_every_route(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # json.loads raises RecursionError, not ValueError, on such a body: it was a 500 and a logged traceback.
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    headers = {**admin, "Content-Type": "application/json"}

    no_body = await client.post(f"{API}/executions/smoke%231/abort", content=deep, headers=headers)
    read_by_hand = await client.post(f"{API}/workflows", content=deep, headers=headers)
    revoke = await client.request("DELETE", f"{ORG}/tokens/01ARZ3NDEKTSV4RRFFQ69G5FAV", content=deep, headers=headers)

    await _problem(no_body, 422, "takes no request body")
    await _problem(read_by_hand, 400, "not valid JSON")
    await _problem(revoke, 422, "takes no request body")
