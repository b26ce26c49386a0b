"""Exports: JSON Lines, CSV (formula-safe) and OCSF API Activity, streamed in constant memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import testgate.operations.audit  # noqa: F401  (registers the audit operations)
from testgate import __version__
from testgate.audit import export, query
from testgate.audit.formats import CSV_COLUMNS, activity_id
from testgate.config import Settings
from testgate.operations.audit import ExportPlan
from testgate.operations.dispatch import dispatch

if TYPE_CHECKING:
    from tests.audit.conftest import Chain

START = datetime(2026, 2, 1, 12, 0, 0, 123456, tzinfo=UTC)
MB = 1024 * 1024


async def _text(chain: Chain, fmt: export.Format, filters: query.Filters | None = None) -> str:
    chunks = [c async for c in export.stream(chain.platform.db, chain.org_id, fmt, filters or query.Filters(), batch=2)]
    return "".join(chunks)


async def test_json_lines_hold_one_complete_event_per_line_oldest_first(chain: Chain) -> None:
    await chain.insert(5, start=START)
    lines = (await _text(chain, "jsonl")).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    first = records[0]
    assert first["time"] == "2026-02-01T12:00:00.123456+00:00"
    assert (first["environment"], first["actor"]["name"]) == ("dev", "ci-bot")
    assert first["arguments"] == {"limit": 50, "selector": None}
    assert first["prev_hash"] == "0" * 64
    assert records[1]["prev_hash"] == first["hash"]


async def test_csv_has_a_header_and_flattened_columns_with_json_structures(chain: Chain) -> None:
    await chain.insert(3, start=START)
    rows = list(csv.reader(io.StringIO(await _text(chain, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    record = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert (record["seq"], record["actor_name"], record["environment"]) == ("1", "ci-bot", "dev")
    assert json.loads(record["resources"]) == [{"id": "wf-1", "name": "smoke", "type": "workflow"}]
    assert json.loads(record["arguments"]) == {"limit": 50, "selector": None}
    assert len(rows) == 4


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
async def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(chain: Chain, payload: str) -> None:
    # OWASP CSV injection: a leading = + - @ (or tab, CR) makes a cell a formula in Excel and friends.
    await chain.insert(1, start=START, reason=payload, actor_name=payload, user_agent=payload)
    header, row = list(csv.reader(io.StringIO(await _text(chain, "csv"))))
    record = dict(zip(header, row, strict=True))
    for column in ("reason", "actor_name", "user_agent"):
        assert record[column] == "'" + payload


async def test_ocsf_events_are_api_activity_with_the_mapped_fields(chain: Chain) -> None:
    await chain.insert(1, start=START, actions=("workflow.create",), outcome="denied", reason="needs write")
    (line,) = (await _text(chain, "ocsf")).splitlines()
    event = json.loads(line)
    assert (event["class_uid"], event["category_uid"], event["activity_id"], event["type_uid"]) == (6003, 6, 1, 600301)
    assert event["time"] == int(START.timestamp() * 1000)
    assert event["actor"]["user"] == {"name": "ci-bot", "uid": "tok-ci", "type": "api_token", "type_id": 99}
    assert event["api"]["operation"] == "workflow.create"
    assert event["api"]["request"] == {"uid": "req-1"}
    assert event["src_endpoint"] == {"ip": "10.0.0.7"}
    assert event["http_request"] == {"user_agent": "pytest"}
    assert (event["status"], event["status_id"], event["status_detail"]) == ("Failure", 2, "needs write")
    assert event["resources"] == [{"type": "workflow", "uid": "wf-1", "name": "smoke"}]
    assert event["metadata"] == {
        "product": {"name": "testgate", "vendor_name": "testgate", "version": __version__},
        "version": "1.1.0",
        "uid": "ev" + "1".zfill(24),
    }
    assert event["unmapped"]["outcome"] == "denied"
    assert event["unmapped"]["arguments"] == {"limit": 50, "selector": None}


@pytest.mark.parametrize(
    ("action", "activity"),
    [
        ("testcase.create", 1),
        ("results.upload", 1),
        ("workflow.list", 2),
        ("execution.get", 2),
        ("audit.export", 2),
        ("testcase.update", 3),
        ("execution.abort", 3),
        ("workflow.delete", 4),
        ("testcase.bulk_delete", 4),
        ("audit.purge", 4),
        ("auth.login", 99),
    ],
)
def test_actions_map_to_ocsf_activities(action: str, activity: int) -> None:
    assert activity_id(action) == activity


async def test_exports_apply_the_same_filters_as_listing(chain: Chain) -> None:
    await chain.insert(6, start=START, step=timedelta(hours=1), actions=("workflow.list", "workflow.run"))
    text = await _text(chain, "jsonl", query.Filters(action="workflow.run", since=START + timedelta(hours=2)))
    assert [json.loads(line)["seq"] for line in text.splitlines()] == [4, 6]


async def test_the_export_operation_is_audited_and_bounds_the_export_to_the_log_it_saw(chain: Chain) -> None:
    await chain.insert(3, start=START)
    plan = await dispatch(chain.platform, chain.call(), "audit.export", {"format": "csv", "environment": "dev"})
    assert isinstance(plan, ExportPlan)
    assert (plan.through_seq, plan.environment_id, plan.media_type) == (3, chain.env_id, "text/csv; charset=utf-8")
    assert plan.filename.startswith("audit-acme-")
    assert plan.filename.endswith(".csv")
    assert plan.url.endswith("/api/v1/organizations/acme/audit/export?environment=dev&format=csv")
    assert (await chain.events())[-1].action == "audit.export"
    await chain.insert(2, start=START + timedelta(days=1))
    rows = list(csv.reader(io.StringIO(await _text(chain, "csv", plan.filters()))))
    assert [r[1] for r in rows[1:]] == ["1", "2", "3"]


# Runs in a process of its own, so that its resident memory is the export's and not the test run's.
# (Memory tracing with tracemalloc made the export six to ten times slower; a child's ru_maxrss starts
# at its parent's on Linux.) Resident memory is sampled after every chunk.
EXPORT_IN_A_FRESH_PROCESS = """
import asyncio, sys
from testgate.audit import export
from testgate.store.db import Database, create_engine

def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096

async def main(url, organization, fmt):
    db = Database(create_engine(url))
    size, samples = 0, []
    # Chunks are measured and dropped, as a response body or a file writer does with them.
    async for chunk in export.stream(db, organization, fmt):
        size += len(chunk)
        samples.append(resident())
    await db.dispose()
    print(size, samples[0], max(samples))

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from Linux's /proc")
async def test_exporting_100k_events_streams_in_bounded_memory(
    large_log: tuple[Settings, str], fmt: export.Format
) -> None:
    settings, org_id = large_log
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXPORT_IN_A_FRESH_PROCESS,
        settings.effective_database_url,
        org_id,
        fmt,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    size, first, most = map(int, out.split())
    growth = most - first  # what the process held beyond its first chunk, at its most
    print(f"{fmt}: resident memory grew {growth / MB:.1f} MB after the first chunk while exporting {size / MB:.0f} MB")
    assert growth < 20 * MB
    # The output dwarfs the growth: nothing accumulates batch after batch.
    assert size > 30 * MB
    assert size > 3 * growth
