"""Executions over REST: run, wait, logs, results, artifacts, tags, abort and keyset pages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from testgate.runner.local import LocalExecutor

API = "/api/v1/organizations/acme/environments/dev"
Create = Callable[..., Awaitable[httpx.Response]]
JUNIT = (
    '<testsuite name="unit"><testcase classname="calc" name="adds"/>'
    '<testcase classname="calc" name="divides"><failure message="boom">trace</failure></testcase></testsuite>'
)
STEPS = [
    {"name": "greet", "shell": "echo hello"},
    {"name": "report", "shell": f"mkdir -p out && echo kept > out/note.txt && printf '%s' '{JUNIT}' > junit.xml"},
]
BOUND = 30


async def _run_and_wait(client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    started = await client.post(f"{API}/workflows/smoke/executions", json=body, headers=admin)
    assert started.status_code == 201, started.text
    with anyio.fail_after(BOUND):
        waited = await client.post(f"{API}/wait", json={"ids": [started.json()["id"]], "timeout": 20}, headers=admin)
    assert waited.status_code == 200
    assert waited.json()["finished"] is True
    return {"started": started, "waited": waited.json()}


async def test_a_run_is_started_waited_for_and_read_back_over_rest(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create, executor: LocalExecutor
) -> None:
    await create_workflow("smoke", steps=STEPS, results={"junit": ["junit.xml"]}, artifacts={"paths": ["out/*"]})

    run = await _run_and_wait(client, admin, {"tags": {"branch": "main"}})
    execution_id = run["started"].json()["id"]
    detail = await client.get(f"{API}/executions/{execution_id}", headers=admin)
    logs = await client.get(f"{API}/executions/{execution_id}/logs", params={"grep": "hello"}, headers=admin)
    failed = await client.get(f"{API}/executions/{execution_id}/results", params=[("status", "failed")], headers=admin)

    assert run["started"].headers["location"] == f"{API}/executions/{execution_id}"
    assert run["waited"]["executions"][0]["tests"] == {"total": 2, "passed": 1, "failed": 1, "skipped": 0, "errored": 0}
    assert detail.json()["tags"] == {"branch": "main"}
    assert [s["status"] for s in detail.json()["steps"]] == ["passed", "passed"]
    assert detail.json()["attempts"] == 1  # docs/deployment.md: which runner ran it, and how often
    assert detail.json()["runner"] == executor.runner_id
    assert [line["text"] for line in logs.json()["lines"] if line["text"] == "hello"] == ["hello"]
    assert failed.json()["total"] == 2
    assert [(r["name"], r["message"]) for r in failed.json()["results"]] == [("divides", "boom")]


async def test_an_artifact_is_listed_read_and_downloaded_safely(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create, executor: LocalExecutor
) -> None:
    await create_workflow("smoke", steps=STEPS, artifacts={"paths": ["out/*"]})
    execution_id = (await _run_and_wait(client, admin, {}))["started"].json()["id"]

    listed = await client.get(f"{API}/executions/{execution_id}/artifacts", headers=admin)
    read = await client.get(f"{API}/executions/smoke%231/artifacts/out/note.txt", headers=admin)
    download = await client.get(
        f"{API}/executions/{execution_id}/artifacts/out/note.txt", params={"download": 1}, headers=admin
    )
    # CWE-22: the path is looked up among the execution's artifacts, never opened as given.
    escape = await client.get(f"{API}/executions/{execution_id}/artifacts/..%2F..%2Fetc%2Fpasswd", headers=admin)

    assert [a["path"] for a in listed.json()["artifacts"]] == ["out/note.txt"]
    assert read.json()["content"] == "kept\n"
    assert download.content == b"kept\n"
    assert download.headers["content-disposition"] == 'attachment; filename="note.txt"'
    assert download.headers["x-content-type-options"] == "nosniff"
    assert escape.status_code == 404
    assert "artifact" in escape.json()["detail"]


async def test_executions_page_newest_first_by_cursor(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    junit = '<testsuite name="s"><testcase classname="c" name="t"/></testsuite>'
    for _ in range(5):
        body = {"workflow": "external", "files": [{"name": "j.xml", "content": junit}]}
        assert (await client.post(f"{API}/results", json=body, headers=admin)).status_code == 201

    numbers: list[list[int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "workflow": "external", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(f"{API}/executions", params=params, headers=admin)).json()
        numbers.append([e["number"] for e in page["executions"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert numbers == [[5, 4], [3, 2], [1]]


async def test_execution_filters_are_validated(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    bad_status = await client.get(f"{API}/executions", params={"status": "sideways"}, headers=admin)
    bad_cursor = await client.get(f"{API}/executions", params={"cursor": "%%%"}, headers=admin)
    bad_limit = await client.get(f"{API}/executions", params={"limit": 0}, headers=admin)

    assert bad_status.status_code == 422
    assert bad_cursor.status_code == 422
    assert [e["path"] for e in bad_limit.json()["errors"]] == ["query.limit"]


async def test_tags_are_patched_and_a_finished_execution_cannot_be_aborted(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    junit = '<testsuite name="s"><testcase classname="c" name="t"/></testsuite>'
    body = {"workflow": "external", "files": [{"name": "j.xml", "content": junit}], "tags": {"a": "1"}}
    execution_id = (await client.post(f"{API}/results", json=body, headers=admin)).json()["id"]

    patched = await client.patch(
        f"{API}/executions/{execution_id}/tags", json={"tags": {"a": None, "b": "2"}}, headers=admin
    )
    abort = await client.post(f"{API}/executions/{execution_id}/abort", headers=admin)
    unknown_field = await client.patch(
        f"{API}/executions/{execution_id}/tags", json={"tags": {}, "surprise": 1}, headers=admin
    )

    assert patched.json() == {"id": execution_id, "tags": {"b": "2"}}
    assert abort.status_code == 409
    assert unknown_field.status_code == 422
    assert [e["path"] for e in unknown_field.json()["errors"]] == ["surprise"]


async def test_a_dashboard_link_points_into_the_console(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create
) -> None:
    await create_workflow("smoke", steps=STEPS)
    response = await client.get(f"{API}/dashboard-url", params={"kind": "workflow", "ref": "smoke"}, headers=admin)
    missing = await client.get(f"{API}/dashboard-url", params={"kind": "workflow", "ref": "nope"}, headers=admin)

    assert response.json() == {"url": "http://127.0.0.1:8080/ui/acme/dev/workflows/smoke"}
    assert missing.status_code == 404
    assert missing.json()["detail"] == "workflow 'nope' not found in environment 'dev'"
