"""One artifact over REST: a bounded JSON read (line range, grep), or the whole file as a download.

A download of a file in the filesystem store is a ``FileResponse`` (ranges, validators); one in object
storage streams the object through, a chunk at a time.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path as LocalPath
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from testgate.api.context import dispatch_as, platform_of, rest_call
from testgate.api.routing import env_router
from testgate.operations.context import Call
from testgate.platform import artifacts, executions, tenancy
from testgate.platform.artifact_store import ObjectStream
from testgate.platform.artifacts import ArtifactContent
from testgate.platform.context import Platform

Caller = Annotated[Call, Depends(rest_call)]
ExecutionId = Annotated[str, Path(description="an execution id, or 'workflow-name#number'", max_length=100)]
ArtifactPath = Annotated[str, Path(description="the artifact's path as listed", max_length=1024)]

_DOWNLOAD = {
    "description": "the file itself (with ?download=1)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}

router = env_router(tags=["executions"])


def download_name(path: str) -> str:
    """A file name safe for Content-Disposition: the last segment, without control characters."""
    name = PurePosixPath(path.replace("\\", "/")).name
    cleaned = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return cleaned or "artifact"


def attachment(name: str, size: int) -> dict[str, str]:
    """Content-Disposition (RFC 6266, RFC 5987 for a non-ASCII name) and Content-Length of a streamed file."""
    quoted = quote(name)
    disposition = f'attachment; filename="{name}"' if quoted == name else f"attachment; filename*=utf-8''{quoted}"
    return {"Content-Disposition": disposition, "Content-Length": str(size)}


async def _stored(platform: Platform, call: Call, ref: str, path: str) -> tuple[LocalPath | ObjectStream, str]:
    """The stored bytes and media type of an artifact the caller was just authorized to read."""
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, call.organization)
        env = await tenancy.environment_by_slug(session, org, call.environment or "")
        execution = await executions.get(session, env, ref)
        row = await artifacts.artifact_row(session, execution.id, path)
    return await artifacts.download(platform, row), row.media_type


@router.get(
    "/executions/{id}/artifacts/{path:path}",
    response_model=ArtifactContent,
    operation_id="read_artifact",
    summary="Read or download an artifact",
    responses={200: _DOWNLOAD},
)
async def read_artifact(
    request: Request,
    call: Caller,
    id: ExecutionId,
    path: ArtifactPath,
    start_line: Annotated[int | None, Query(ge=1, description="first line (1-based)")] = None,
    end_line: Annotated[int | None, Query(ge=1, description="last line (inclusive)")] = None,
    grep: Annotated[str | None, Query(max_length=500, description="regular expression")] = None,
    context: Annotated[int, Query(ge=0, le=20, description="lines around each match")] = 0,
    max_matches: Annotated[int, Query(ge=1, le=500)] = 50,
    download: Annotated[bool, Query(description="return the raw file as an attachment")] = False,
) -> Any:
    """Read a text artifact (bounded JSON), or with ``download=1`` stream the whole file."""
    args: dict[str, Any] = {"id": id, "path": path}
    if download:
        # Authorization and the audit event come from the operation; only then is the file opened.
        await dispatch_as(ArtifactContent, request, call, "artifact.read", args)
        return await _file(platform_of(request), call, id, path)
    args |= {"start_line": start_line, "end_line": end_line, "grep": grep, "context": context}
    args["max_matches"] = max_matches
    return await dispatch_as(ArtifactContent, request, call, "artifact.read", args)


async def _file(platform: Platform, call: Call, ref: str, path: str) -> Response:
    stored, media_type = await _stored(platform, call, ref, path)
    headers = {
        "X-Content-Type-Options": "nosniff",
        # A downloaded HTML or SVG artifact must never run as this origin's page.
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store",
    }
    if isinstance(stored, ObjectStream):
        headers |= attachment(download_name(path), stored.size)
        return StreamingResponse(stored.chunks, media_type=media_type, headers=headers)
    return FileResponse(
        stored,
        media_type=media_type,
        filename=download_name(path),
        content_disposition_type="attachment",
        headers=headers,
    )
