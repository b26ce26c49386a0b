"""One artifact in the console: a text preview, or the file as a download.

    GET /ui/{org}/{env}/executions/{id}/artifacts/{path}             artifact.read: a bounded text preview
    GET /ui/{org}/{env}/executions/{id}/artifacts/{path}?download=1  artifact.read, then the file streams

Authorization and the audit event come from dispatching ``artifact.read``; only then is the stored file
opened. A download is an attachment in a sandbox, so an HTML or SVG artifact never runs as this origin.
A file in object storage streams through, a chunk at a time.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, HTMLResponse, Response, StreamingResponse

from testgate.platform import artifacts, executions, tenancy
from testgate.platform.artifact_store import ObjectStream
from testgate.platform.artifacts import ArtifactContent
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "private, no-store",
}


def download_name(path: str) -> str:
    """A file name safe for Content-Disposition: the last segment, without control characters."""
    name = PurePosixPath(path.replace("\\", "/")).name
    cleaned = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return cleaned or "artifact"


def attachment(name: str, size: int) -> dict[str, str]:
    """Content-Disposition (RFC 6266, RFC 5987 for a non-ASCII name) and Content-Length of a streamed file."""
    quoted = quote(name)
    disposition = f'attachment; filename="{name}"' if quoted == name else f"attachment; filename*=utf-8''{quoted}"
    return {"Content-Disposition": disposition, "Content-Length": str(size)}


async def _download(c: Console, ref: str, path: str) -> Response:
    """The stored file of an artifact ``c`` was just authorized to read."""
    async with c.platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, c.org)
        env = await tenancy.environment_by_slug(session, org, c.env.slug)
        execution = await executions.get(session, env, ref)
        row = await artifacts.artifact_row(session, execution.id, path)
    stored = await artifacts.download(c.platform, row)
    if isinstance(stored, ObjectStream):
        headers = DOWNLOAD_HEADERS | attachment(download_name(path), stored.size)
        return StreamingResponse(stored.chunks, media_type=row.media_type, headers=headers)
    return FileResponse(
        stored,
        media_type=row.media_type,
        filename=download_name(path),
        content_disposition_type="attachment",
        headers=DOWNLOAD_HEADERS,
    )


@router.get("/executions/{id}/artifacts/{path:path}")
async def artifact(
    c: Con,
    id: Annotated[str, Path(max_length=100)],
    path: Annotated[str, Path(max_length=1024)],
    download: Annotated[bool, Query()] = False,
) -> Response:
    """Preview a text artifact (about 64 KB at most), or download the whole file."""
    content = await c.run(ArtifactContent, "artifact.read", {"id": id, "path": path})
    if download:
        return await _download(c, id, path)
    page: HTMLResponse = c.page(
        "artifact.html",
        title=content.path,
        section="executions",
        artifact=content,
        execution_url=c.url("execution", id),
        download_url=f"{c.url('execution', id)}/artifacts/{quote(path)}?download=1",
    )
    return page
