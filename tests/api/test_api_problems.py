"""RFC 7807 problems, request ids and the OpenAPI document."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from testgate.operations import registry
from testgate.operations.context import OpContext

API = "/api/v1/organizations/acme/environments/dev"
PROBLEM = "application/problem+json"


async def test_an_unknown_route_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing/here")

    # RFC 7807 §3: problem details, with the request path as the instance.
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "https://testgate.dev/problems/not-found"
    assert body["instance"] == "/api/v1/nothing/here"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_a_wrong_method_is_a_problem_that_names_the_allowed_ones(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.put(f"{API}/labels", headers=admin)

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.headers["content-type"] == PROBLEM


async def test_a_safe_request_id_is_echoed_and_an_unsafe_one_replaced(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/api/v1/nothing", headers={"X-Request-ID": "ci-run-42.7"})
    replaced = await client.get("/api/v1/nothing", headers={"X-Request-ID": "<script>" + "x" * 80})

    assert echoed.headers["x-request-id"] == "ci-run-42.7"
    assert echoed.json()["request_id"] == "ci-run-42.7"
    assert "<" not in replaced.headers["x-request-id"]
    assert len(replaced.headers["x-request-id"]) == 32


async def test_a_handler_crash_is_a_500_problem_without_the_exception_text(
    app: FastAPI, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(ctx: OpContext, args: Any) -> Any:
        raise RuntimeError("secret internals: /etc/shadow")

    crashing = dataclasses.replace(registry.get("label.list"), handler=boom)
    monkeypatch.setitem(registry._REGISTRY, "label.list", crashing)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with structlog.testing.capture_logs() as logged:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(f"{API}/labels", headers={**admin, "X-Request-ID": "crash-1"})

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["x-request-id"] == "crash-1"
    body = response.json()
    assert body["type"] == "https://testgate.dev/problems/internal-error"
    assert body["request_id"] == "crash-1"
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    crash = [e for e in logged if e["event"] == "unhandled error"]
    assert [(e["request_id"], type(e["exc_info"]).__name__) for e in crash] == [("crash-1", "RuntimeError")]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_the_openapi_document_describes_every_route_and_resolves_every_reference(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    paths = {p.removeprefix(API.replace("acme", "{org}").replace("dev", "{env}")) for p in document["paths"]}
    assert {"/workflows", "/workflows/{name}/executions", "/executions/{id}/logs", "/results", "/wait"} <= paths
    assert {"/test-cases/bulk-delete", "/dashboard-url", "/executions/{id}/artifacts/{path}"} <= paths
    schemas = document["components"]["schemas"]
    assert all(ref.removeprefix("#/components/schemas/") in schemas for ref in _refs(document))
    run = document["paths"]["/api/v1/organizations/{org}/environments/{env}/workflows/{name}/executions"]["post"]
    assert run["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RunOut"}
    assert run["responses"]["403"]["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert run["security"] == [{"bearer": []}]
