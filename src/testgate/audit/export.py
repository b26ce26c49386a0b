"""Exporting the audit log as JSON Lines, CSV or OCSF (JSON Lines of API Activity events).

Exports stream: an async generator reads keyset batches oldest first, each in a short session of its
own, and yields one text chunk per batch, so memory stays constant however long the log is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from testgate.audit import query
from testgate.audit.formats import CSV_COLUMNS, csv_row, event_record, ocsf_event
from testgate.store.db import Database

Format = Literal["jsonl", "csv", "ocsf"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "ocsf")
MEDIA_TYPES: dict[Format, str] = {
    "jsonl": "application/x-ndjson; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "ocsf": "application/x-ndjson; charset=utf-8",
}
EXTENSIONS: dict[Format, str] = {"jsonl": "jsonl", "csv": "csv", "ocsf": "ocsf.jsonl"}


# Turns one batch of rows into one chunk of text, given environment slugs by id.
Chunker = Callable[[list[query.AnyRow], dict[str, str]], str]
# Exported values are plain JSON trees: skipping the circular-reference check saves work per event.
_encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


def _json_lines(convert: Callable[[Any, str | None], dict[str, Any]]) -> Chunker:
    def chunk(rows: list[query.AnyRow], slugs: dict[str, str]) -> str:
        lines = [_encode(convert(row, slugs.get(row.environment_id or ""))) for row in rows]
        return "\n".join(lines) + "\n"

    return chunk


def _csv_chunk(rows: list[query.AnyRow], slugs: dict[str, str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(csv_row(row, slugs.get(row.environment_id or "")) for row in rows)
    return buffer.getvalue()


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_COLUMNS)
    return buffer.getvalue()


_CHUNKERS: dict[Format, Chunker] = {
    "jsonl": _json_lines(event_record),
    "csv": _csv_chunk,
    "ocsf": _json_lines(ocsf_event),
}


async def stream(
    db: Database,
    organization_id: str,
    fmt: Format,
    filters: query.Filters = query.Filters(),
    *,
    batch: int = query.BATCH,
) -> AsyncIterator[str]:
    """The organization's matching events in ``fmt``, oldest first, one chunk of text per batch."""
    chunk = _CHUNKERS[fmt]
    slugs = await query.environment_slugs(db, organization_id)
    if fmt == "csv":
        yield csv_header()
    async for rows in query.batches(db, organization_id, filters, size=batch):
        yield chunk(list(rows), slugs)


def filename(organization: str, fmt: Format, stamp: str) -> str:
    """A download name such as ``audit-acme-20260101T000000Z.csv``."""
    return f"audit-{organization}-{stamp}.{EXTENSIONS[fmt]}"
