"""The audit file sink: committed events only, one JSON line each, in an owner-only file."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testgate.audit import recorder, retention, sink
from testgate.audit.sink import FileSink
from testgate.platform.context import Platform
from testgate.store.base import utcnow

if TYPE_CHECKING:
    from tests.audit.conftest import Chain


def _event(chain: Chain, action: str = "workflow.list") -> recorder.Event:
    return recorder.Event(chain.org_id, action, "allowed", "rest", "api_token", "tok", "ci-bot")


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_committed_event_is_appended_as_a_json_line_to_an_owner_only_file(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with chain.platform.db.session() as session:
        row = await recorder.record(session, _event(chain), sink=FileSink(path))
        await recorder.record(session, _event(chain, "workflow.get"), sink=FileSink(path))
        assert not path.exists()  # nothing before the commit
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = _lines(path)
    assert [(line["seq"], line["action"]) for line in lines] == [(1, "workflow.list"), (2, "workflow.get")]
    assert lines[0]["hash"] == row.hash


async def test_a_rolled_back_event_never_reaches_the_file(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def failing_call() -> None:
        async with chain.platform.db.session() as session:
            await recorder.record(session, _event(chain), sink=FileSink(path))
            raise RuntimeError("the operation failed after auditing")

    with pytest.raises(RuntimeError):
        await failing_call()
    async with chain.platform.db.session() as session:
        await recorder.record(session, _event(chain, "workflow.get"), sink=FileSink(path))
    assert [line["action"] for line in _lines(path)] == ["workflow.get"]


async def test_the_sink_does_not_follow_a_symlink_and_the_event_still_commits(chain: Chain, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(victim)
    async with chain.platform.db.session() as session:
        await recorder.record(session, _event(chain), sink=FileSink(link))
    assert victim.read_text() == "untouched\n"
    assert len(await chain.events()) == 1


async def test_a_retention_purge_ships_its_event_to_the_configured_file(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "siem" / "audit.jsonl"
    path.parent.mkdir()
    settings = chain.platform.settings.model_copy(update={"audit_file": path})
    assert isinstance(sink.from_settings(settings), FileSink)
    await chain.insert(3, start=utcnow() - timedelta(days=365))
    await retention.purge(Platform(settings=settings, db=chain.platform.db), chain.org_id)
    (line,) = _lines(path)
    assert (line["action"], line["seq"]) == ("audit.purge", 4)
    assert line["arguments"] == {
        "older_than_days": 180,
        "cutoff": line["arguments"]["cutoff"],  # type: ignore[index]
        "purged": 3,
        "checkpoint_seq": 3,
        "checkpoint_hash": (await chain.events())[0].prev_hash,
    }
