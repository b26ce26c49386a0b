"""Workflows over REST: YAML in and out, validation errors with field paths, conflicts, deletion."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx

API = "/api/v1/organizations/acme/environments/dev"
YAML = {"Content-Type": "application/yaml"}
Create = Callable[..., Awaitable[httpx.Response]]


async def test_a_workflow_is_created_from_yaml_with_its_location(create_workflow: Create) -> None:
    response = await create_workflow("smoke")

    assert response.json()["name"] == "smoke"
    assert response.json()["created"] is True
    assert response.headers["location"] == f"{API}/workflows/smoke"


async def test_a_workflow_is_created_from_a_json_definition(
    client: httpx.AsyncClient, admin: dict[str, str], flow: Callable[..., str]
) -> None:
    response = await client.post(f"{API}/workflows", json={"definition": flow("from-json")}, headers=admin)

    assert response.status_code == 201
    fetched = await client.get(f"{API}/workflows/from-json", headers=admin)
    assert fetched.json()["step_names"] == ["greet"]
    assert fetched.json()["labels"] == {"team": "qa"}


async def test_an_invalid_workflow_is_refused_naming_the_field_path(
    client: httpx.AsyncClient, admin: dict[str, str], flow: Callable[..., str]
) -> None:
    document = flow("bad", steps=[{"name": "slow", "shell": "true", "timeout": "soon"}])

    response = await client.post(f"{API}/workflows", content=document, headers={**admin, **YAML})

    assert response.status_code == 422
    # RFC 7807 §3.2: the extension member "errors" names each invalid field.
    problem = response.json()
    assert problem["type"] == "https://testgate.dev/problems/invalid-input"
    assert [e["path"] for e in problem["errors"]] == ["spec.steps[0].timeout"]
    assert "duration" in problem["errors"][0]["message"]


async def test_yaml_that_does_not_parse_is_invalid_input(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    response = await client.post(f"{API}/workflows", content="kind: [unclosed", headers={**admin, **YAML})

    assert response.status_code == 422
    assert "not valid YAML" in response.json()["detail"]


async def test_a_json_body_that_is_not_json_is_a_malformed_body(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    headers = {**admin, "Content-Type": "application/json"}

    response = await client.post(f"{API}/workflows", content=b'{"definition": ', headers=headers)

    assert response.status_code == 400
    assert response.json()["type"] == "https://testgate.dev/problems/malformed-body"


async def test_an_unsupported_content_type_is_refused(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    headers = {**admin, "Content-Type": "text/plain"}

    response = await client.post(f"{API}/workflows", content="kind: TestWorkflow", headers=headers)

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


async def test_creating_a_workflow_twice_is_a_conflict(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create, flow: Callable[..., str]
) -> None:
    await create_workflow("smoke")

    response = await client.post(f"{API}/workflows", content=flow("smoke"), headers={**admin, **YAML})

    assert response.status_code == 409
    assert response.json()["type"] == "https://testgate.dev/problems/conflict"


async def test_the_definition_comes_back_as_the_yaml_that_was_sent(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create, flow: Callable[..., str]
) -> None:
    await create_workflow("smoke")

    as_yaml = await client.get(f"{API}/workflows/smoke/definition", headers=admin)
    as_json = await client.get(f"{API}/workflows/smoke/definition", headers={**admin, "Accept": "application/json"})

    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert as_yaml.text == flow("smoke")
    assert as_json.json() == {"name": "smoke", "definition": flow("smoke")}


async def test_put_replaces_a_workflows_definition(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create, flow: Callable[..., str]
) -> None:
    await create_workflow("smoke")
    changed = flow("smoke", steps=[{"name": "one", "shell": "true"}, {"name": "two", "shell": "true"}])

    response = await client.put(f"{API}/workflows/smoke", content=changed, headers={**admin, **YAML})
    renamed = await client.put(f"{API}/workflows/smoke", content=flow("other"), headers={**admin, **YAML})

    assert response.status_code == 200
    assert response.json()["created"] is False
    assert (await client.get(f"{API}/workflows/smoke", headers=admin)).json()["steps"] == 2
    assert renamed.status_code == 422


async def test_labels_schema_and_selectors_describe_the_workflows(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create
) -> None:
    await create_workflow("smoke")

    labels = await client.get(f"{API}/labels", headers=admin)
    schema = await client.get(f"{API}/workflow-schema", headers=admin)
    selected = await client.get(f"{API}/workflows", params={"selector": "team=qa"}, headers=admin)
    none = await client.get(f"{API}/workflows", params={"selector": "team=ops"}, headers=admin)

    assert labels.json() == {"labels": {"team": ["qa"]}}
    assert schema.json()["json_schema"]["title"] == "TestWorkflow"
    assert selected.json()["count"] == 1
    assert none.json()["count"] == 0


async def test_deleting_a_workflow_over_rest_needs_no_further_confirmation(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create
) -> None:
    await create_workflow("doomed")

    response = await client.delete(f"{API}/workflows/doomed", params={"delete_executions": "true"}, headers=admin)
    again = await client.get(f"{API}/workflows/doomed", headers=admin)

    # The DELETE verb is the explicit confirmation over REST.
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert again.status_code == 404


async def test_a_workflows_metrics_cover_its_finished_runs(
    client: httpx.AsyncClient, admin: dict[str, str], create_workflow: Create
) -> None:
    await create_workflow("smoke")

    response = await client.get(f"{API}/workflows/smoke/metrics", params={"last": 10}, headers=admin)
    too_few = await client.get(f"{API}/workflows/smoke/metrics", params={"last": 1}, headers=admin)

    assert response.status_code == 200
    assert response.json()["workflow"] == "smoke"
    assert response.json()["executions"] == 0
    assert too_few.status_code == 422
    assert [e["path"] for e in too_few.json()["errors"]] == ["query.last"]
