"""Workflow definitions over REST: YAML in (or JSON ``{"definition": ...}``), YAML out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from testgate.api import bodies
from testgate.api.context import dispatch_as, env_path, rest_call
from testgate.api.routing import env_router
from testgate.operations.context import Call
from testgate.operations.workflows import Definition, DefinitionIn, Saved

YAML = "application/yaml"

Name = Annotated[str, Path(description="the workflow's metadata.name", min_length=1, max_length=63)]
Caller = Annotated[Call, Depends(rest_call)]

_YAML_SCHEMA = {"type": "string", "description": "a TestWorkflow YAML document (see workflow-schema)"}
DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            YAML: {"schema": _YAML_SCHEMA},
            "text/yaml": {"schema": _YAML_SCHEMA},
            bodies.JSON_TYPE: {"schema": DefinitionIn.model_json_schema()},
        },
    }
}

router = env_router(tags=["workflows"])


async def _definition_args(request: Request) -> dict[str, Any]:
    kind = bodies.media_type(request)
    if kind in bodies.YAML_TYPES:
        return {"definition": bodies.utf8(await request.body())}
    if kind == bodies.JSON_TYPE:
        return bodies.json_object(await request.body())
    raise bodies.unsupported('application/yaml, or application/json {"definition": "<YAML>"}')


@router.post(
    "/workflows",
    status_code=201,
    response_model=Saved,
    operation_id="create_workflow",
    summary="Create a workflow",
    openapi_extra=DEFINITION_BODY,
)
async def create_workflow(request: Request, response: Response, call: Caller) -> Saved:
    """Create a workflow from a TestWorkflow YAML document; 409 if the name is taken."""
    saved = await dispatch_as(Saved, request, call, "workflow.create", await _definition_args(request))
    response.headers["Location"] = env_path(call, "workflows", saved.name)
    return saved


@router.put(
    "/workflows/{name}",
    response_model=Saved,
    operation_id="update_workflow",
    summary="Update a workflow",
    openapi_extra=DEFINITION_BODY,
)
async def update_workflow(request: Request, call: Caller, name: Name) -> Saved:
    """Replace a workflow's definition (metadata.name must stay the same)."""
    args = {**await _definition_args(request), "name": name}
    return await dispatch_as(Saved, request, call, "workflow.update", args)


@router.get(
    "/workflows/{name}/definition",
    response_model=Definition,
    operation_id="get_workflow_definition",
    summary="Get a workflow's YAML definition",
    responses={200: {"content": {YAML: {"schema": _YAML_SCHEMA}}}},
)
async def get_definition(request: Request, call: Caller, name: Name) -> Response:
    """The workflow's YAML exactly as last applied (JSON when the client accepts only JSON)."""
    definition = await dispatch_as(Definition, request, call, "workflow.definition", {"name": name})
    if bodies.wants_json(request):
        return JSONResponse(definition.model_dump())
    return Response(definition.definition, media_type=YAML)
