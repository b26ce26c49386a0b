"""The OpenAPI document: FastAPI's, with error responses as problem+json and hand-written body schemas' ``$defs``
moved into ``components`` (so every ``$ref`` resolves)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from testgate.api.problems import MEDIA_TYPE

# Hand-written request bodies render models with this template, then ``refine`` hoists their ``$defs``.
COMPONENT_REF = "#/components/schemas/{model}"


def install(app: FastAPI) -> None:
    """Serve the refined document from ``app.openapi()`` (built once, then cached by FastAPI)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = refine(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(document: dict[str, Any]) -> dict[str, Any]:
    """Fix up a generated document in place and return it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            _problems_as_problem_json(operation)
            _hoist_defs(operation.get("requestBody"), schemas)
    return document


def _problems_as_problem_json(operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        if str(status).isdigit() and int(status) >= 400 and "application/json" in content:
            content[MEDIA_TYPE] = content.pop("application/json")


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _hoist_defs(item, schemas)
    elif isinstance(node, dict):
        for name, schema in (node.pop("$defs", None) or {}).items():
            schemas.setdefault(name, schema)
            _hoist_defs(schema, schemas)
        for value in node.values():
            _hoist_defs(value, schemas)
