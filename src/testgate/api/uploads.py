"""Results upload over REST: JUnit files as multipart/form-data, or a JSON ``UploadIn`` document."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData, UploadFile

from testgate.api import bodies
from testgate.api.context import dispatch_as, env_path, rest_call
from testgate.api.openapi import COMPONENT_REF
from testgate.api.routing import env_router
from testgate.errors import FieldError, InvalidInput
from testgate.operations.context import Call
from testgate.operations.models import ExecutionSummary
from testgate.operations.results import UploadIn
from testgate.platform import junit

Caller = Annotated[Call, Depends(rest_call)]
MULTIPART = "multipart/form-data"
MAX_FILES = 100
MAX_FIELDS = 60

UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "required": ["workflow", "files"],
                    "properties": {
                        "workflow": {"type": "string", "description": "name to file the results under"},
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "tags": {"type": "array", "items": {"type": "string"}, "description": "key=value"},
                    },
                }
            },
            bodies.JSON_TYPE: {"schema": UploadIn.model_json_schema(ref_template=COMPONENT_REF)},
        },
    }
}

router = env_router(tags=["results"])


def parse_tags(values: list[str]) -> dict[str, str]:
    """``["branch=main", "ci=gh"]`` -> ``{"branch": "main", "ci": "gh"}``."""
    tags: dict[str, str] = {}
    errors: list[FieldError] = []
    for index, value in enumerate(values):
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            errors.append(FieldError(f"tags[{index}]", "expected key=value"))
        elif key.strip() in tags:
            errors.append(FieldError(f"tags[{index}]", f"tag {key.strip()!r} is given twice"))
        tags[key.strip()] = val.strip()
    if errors:
        raise InvalidInput("invalid tags", errors=errors)
    return tags


async def _files(form: FormData) -> list[dict[str, str]]:
    uploads = [value for key, value in form.multi_items() if key == "files" and isinstance(value, UploadFile)]
    files = []
    for index, upload in enumerate(uploads):
        name = PurePosixPath((upload.filename or "").replace("\\", "/")).name or f"results-{index + 1}.xml"
        files.append({"name": name, "content": junit.report_text(await upload.read(), name)})
    return files


def _check_fields(form: FormData) -> None:
    """Each part where it belongs: files only under ``files``, text only under ``workflow`` and ``tags``, one
    ``workflow``. Anything else is refused, not ignored nor taken as something it was not named."""
    errors: list[FieldError] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "files":
                errors.append(FieldError(key, "a file: send result files in the field named files"))
        elif key == "files":
            errors.append(FieldError(key, "expected a file (curl -F files=@report.xml), not text"))
        elif key not in ("workflow", "tags"):
            errors.append(FieldError(key, "unknown field (this form takes workflow, tags and files)"))
    if len(form.getlist("workflow")) > 1:
        errors.append(FieldError("workflow", "given more than once"))
    if errors:
        raise InvalidInput("invalid form fields", errors=errors)


async def _from_form(request: Request) -> dict[str, Any]:
    async with request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS) as form:
        _check_fields(form)
        tags = parse_tags([v for v in form.getlist("tags") if isinstance(v, str)])
        args = {"files": await _files(form), "tags": tags}
        workflow = form.get("workflow")
        return args if workflow is None else args | {"workflow": workflow}  # absent: "Field required"


@router.post(
    "/results",
    status_code=201,
    response_model=ExecutionSummary,
    operation_id="upload_results",
    summary="Upload JUnit results",
    openapi_extra=UPLOAD_BODY,
)
async def upload_results(request: Request, response: Response, call: Caller) -> ExecutionSummary:
    """Record JUnit results produced elsewhere as a new finished execution."""
    kind = bodies.media_type(request)
    if kind == MULTIPART:
        args = await _from_form(request)
    elif kind == bodies.JSON_TYPE:
        args = bodies.json_object(await request.body())
    else:
        raise bodies.unsupported("multipart/form-data (files, workflow, tags) or application/json")
    summary = await dispatch_as(ExecutionSummary, request, call, "results.upload", args)
    response.headers["Location"] = env_path(call, "executions", summary.id)
    return summary
