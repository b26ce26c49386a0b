"""REST shapes for registry operations: a table of bindings, each turned into a FastAPI route.

A binding names the HTTP method, the path under the environment and the operation. Path parameters fill
the input fields of the same name; for GET and DELETE the other fields are query parameters, for POST,
PUT and PATCH they form a JSON body model derived from the operation's input. The response model is the
operation's output model, so the OpenAPI document describes both sides.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, create_model
from pydantic.fields import FieldInfo

from testgate.api import bodies
from testgate.api.context import env_path, explicitly_confirmed, platform_of, rest_call
from testgate.errors import FieldError, InvalidInput
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.operations.registry import Operation, get

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CONSTRAINTS = ("gt", "ge", "lt", "le", "min_length", "max_length", "pattern")
_RESERVED = frozenset({"request", "response", "call", "body", "org", "env"})
_TAGS = {
    "workflow": "workflows",
    "label": "workflows",
    "execution": "executions",
    "artifact": "executions",
    "results": "results",
    "testcase": "test cases",
    "dashboard": "links",
}


@dataclass(frozen=True)
class Binding:
    """One REST route for one operation; ``location`` names (collection, output field) for a 201."""

    method: Method
    path: str
    operation: str
    status: int = 200
    location: tuple[str, str] | None = None


BINDINGS = (
    Binding("GET", "/workflows", "workflow.list"),
    Binding("GET", "/workflows/{name}", "workflow.get"),
    Binding("DELETE", "/workflows/{name}", "workflow.delete"),
    Binding("POST", "/workflows/{name}/executions", "workflow.run", status=201, location=("executions", "id")),
    Binding("GET", "/workflows/{name}/metrics", "workflow.metrics"),
    Binding("GET", "/workflow-schema", "workflow.schema"),
    Binding("GET", "/labels", "label.list"),
    Binding("GET", "/executions", "execution.list"),
    Binding("GET", "/executions/{id}", "execution.get"),
    Binding("GET", "/executions/{id}/logs", "execution.logs"),
    Binding("POST", "/executions/{id}/abort", "execution.abort"),
    Binding("PATCH", "/executions/{id}/tags", "execution.tags"),
    Binding("GET", "/executions/{id}/results", "execution.results"),
    Binding("GET", "/executions/{id}/artifacts", "artifact.list"),
    Binding("POST", "/wait", "execution.wait"),
    Binding("GET", "/test-cases", "testcase.list"),
    Binding("POST", "/test-cases", "testcase.create", status=201, location=("test-cases", "id")),
    Binding("POST", "/test-cases/bulk-delete", "testcase.bulk_delete"),
    Binding("GET", "/test-cases/{id}", "testcase.get"),
    Binding("PATCH", "/test-cases/{id}", "testcase.update"),
    Binding("DELETE", "/test-cases/{id}", "testcase.delete"),
    Binding("GET", "/dashboard-url", "dashboard.url"),
)


def _path_names(path: str) -> list[str]:
    return re.findall(r"\{(\w+)(?::\w+)?\}", path)


def _constraints(field: FieldInfo) -> dict[str, Any]:
    return {a: getattr(m, a) for m in field.metadata for a in _CONSTRAINTS if getattr(m, a, None) is not None}


def _default(field: FieldInfo) -> Any:
    return ... if field.is_required() else field.get_default(call_default_factory=True)


def _param(name: str, field: FieldInfo, where: Callable[..., Any]) -> inspect.Parameter:
    spec = where(_default(field), description=field.description, **_constraints(field))
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=spec, annotation=field.annotation)


def _pascal(tool: str) -> str:
    return "".join(part.capitalize() for part in tool.split("_"))


def body_model(op: Operation[Any, Any], fields: dict[str, FieldInfo]) -> type[BaseModel]:
    """The operation's input model, or a model of the fields left after the path took its own."""
    if set(fields) == set(op.input.model_fields):
        return op.input
    definitions: dict[str, Any] = {n: (f.annotation, f) for n, f in fields.items()}
    return create_model(_pascal(op.tool) + "Body", __config__=ConfigDict(extra="forbid"), **definitions)


def _signature(binding: Binding, op: Operation[Any, Any]) -> inspect.Signature:
    fields = dict(op.input.model_fields)
    clash = _RESERVED & set(fields)
    if clash:
        raise ValueError(f"{op.name}: input fields {sorted(clash)} clash with the REST handler's parameters")
    kind = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("request", kind, annotation=Request),
        inspect.Parameter("response", kind, annotation=Response),
        inspect.Parameter("call", kind, annotation=Annotated[Call, Depends(rest_call)]),
    ]
    params += [_param(name, fields.pop(name), Path) for name in _path_names(binding.path)]
    if binding.method not in _BODY_METHODS:
        return inspect.Signature(params + [_param(n, f, Query) for n, f in fields.items()])
    if fields:
        model = body_model(op, fields)
        required = any(f.is_required() for f in fields.values())
        spec = Body(...) if required else Body(None)
        params.append(inspect.Parameter("body", kind, default=spec, annotation=model if required else model | None))
    return inspect.Signature(params)


def _takes_body(binding: Binding, op: Operation[Any, Any]) -> bool:
    """Whether the route has a JSON body: a body method with input fields the path leaves over."""
    return binding.method in _BODY_METHODS and bool(set(op.input.model_fields) - set(_path_names(binding.path)))


def _arguments(values: dict[str, Any]) -> dict[str, Any]:
    body = values.pop("body", None)
    args = {k: v for k, v in values.items() if v is not None}
    if isinstance(body, BaseModel):
        args.update(body.model_dump(exclude_unset=True))
    return args


def endpoint(binding: Binding) -> Callable[..., Awaitable[BaseModel]]:
    """A FastAPI endpoint that dispatches ``binding.operation`` with the request's arguments."""
    op = get(binding.operation)
    path_names = set(_path_names(binding.path))
    query_names = set() if binding.method in _BODY_METHODS else set(op.input.model_fields) - path_names

    async def handle(request: Request, response: Response, call: Call, **values: Any) -> BaseModel:
        unknown = sorted(set(request.query_params) - query_names)
        if unknown:  # ?statuss=failed must not quietly list everything
            known = ", ".join(sorted(query_names)) or "none"
            errors = [FieldError(name, f"unknown query parameter (this route takes: {known})") for name in unknown]
            raise InvalidInput("the request has unknown query parameters", errors=errors)
        if op.destructive:
            call.confirm = explicitly_confirmed
        output = await dispatch(platform_of(request), call, op.name, _arguments(values))
        if binding.location is not None:
            collection, field = binding.location
            response.headers["Location"] = env_path(call, collection, str(getattr(output, field)))
        return output

    handle.__signature__ = _signature(binding, op)  # type: ignore[attr-defined]
    return handle


def _description(op: Operation[Any, Any]) -> str:
    if op.destructive:
        return op.description + "\n\nOver REST, sending this request is the explicit confirmation."
    return op.description


def add(router: APIRouter, binding: Binding) -> None:
    """Add ``binding``'s route to ``router``."""
    op = get(binding.operation)
    router.add_api_route(
        binding.path,
        endpoint(binding),
        methods=[binding.method],
        status_code=binding.status,
        response_model=op.output,
        name=op.tool,
        operation_id=op.tool,
        summary=op.title,
        description=_description(op),
        tags=[_TAGS.get(op.name.partition(".")[0], "other")],
        dependencies=[bodies.JSON_ONLY if _takes_body(binding, op) else bodies.NO_BODY],
    )
