"""``testgate audit``: list, export, verify and purge in-process, each call audited with transport cli."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from testgate.cli.main import app


class AuditCli:
    """Runs ``testgate`` on the test's own data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def __call__(self, *args: str) -> Result:
        env = {"TESTGATE_DATA_DIR": str(self.data_dir), "TESTGATE_DATABASE_URL": None}
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json").stdout)

    def sql(self, statement: str) -> None:
        with sqlite3.connect(self.data_dir / "testgate.db") as db:
            db.execute(statement)


@pytest.fixture
def cli(tmp_path: Path) -> AuditCli:
    return AuditCli(tmp_path / "data")


def test_audit_list_shows_earlier_commands_as_cli_events(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    found = cli.json("audit", "list", "--action", "workflow.")
    (event,) = found["events"]
    assert (event["action"], event["transport"], event["actor"]["type"]) == ("workflow.list", "cli", "local")
    assert event["user_agent"].startswith("testgate-cli/")
    table = cli.ok("audit", "list").stdout
    assert "workflow.list" in table
    assert "audit.list" in table


def test_audit_export_writes_an_owner_only_csv_file(cli: AuditCli, tmp_path: Path) -> None:
    cli.ok("workflow", "list")
    target = tmp_path / "audit.csv"
    cli.ok("audit", "export", "--format", "csv", "--file", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["action"] for r in rows] == ["workflow.list"]


def test_an_export_over_a_world_readable_file_makes_it_owner_only(cli: AuditCli, tmp_path: Path) -> None:
    # docs/audit.md: the export file is 0600. Overwriting an older file kept its mode: a 0644 file then
    # held the whole audit log, arguments and workflow definitions included.
    cli.ok("workflow", "list")
    target = tmp_path / "audit.jsonl"
    target.write_text("old\n")
    target.chmod(0o644)

    cli.ok("audit", "export", "--file", str(target))

    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "workflow.list" in target.read_text()


def test_a_file_that_cannot_be_made_owner_only_ends_the_export_before_it_is_audited(
    cli: AuditCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Someone else's file (writable to us, 0666) cannot be chmod-ed: EPERM. The export must stop before
    # it is authorized and audited, with one line, and leave the file as it was.
    cli.ok("workflow", "list")
    target = tmp_path / "shared.jsonl"
    target.write_text("theirs\n")

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.fchmod", refuse)
    result = cli("audit", "export", "--file", str(target))
    monkeypatch.undo()

    assert result.exit_code == 1
    assert "cannot write" in result.stderr
    assert "Operation not permitted" in result.stderr
    assert "Traceback" not in result.output
    assert target.read_text() == "theirs\n"
    actions = [e["action"] for e in cli.json("audit", "list")["events"]]
    assert "audit.export" not in actions


def test_audit_export_streams_json_lines_to_stdout(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    lines = cli.ok("audit", "export").stdout.splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["workflow.list"]


def test_audit_verify_prints_the_head_to_anchor_a_later_check(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    head = cli.ok("audit", "verify").stdout.strip()
    assert head.startswith("head 1:")
    result = cli.json("audit", "verify", "--anchor", head.removeprefix("head "))
    assert (result["ok"], result["checked"]) == (True, 2)


# Tamper: an event's action rewritten in the database file; verify exits 1 naming the event.
def test_audit_verify_exits_1_and_names_a_tampered_event(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    cli.ok("workflow", "list")
    cli.sql("UPDATE audit_events SET action = 'label.list' WHERE seq = 2")
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert "event seq 2 (id" in result.stderr
    assert "was modified" in result.stderr


def test_audit_purge_without_a_terminal_needs_yes(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    refused = cli("audit", "purge", "--older-than-days", "1")
    assert refused.exit_code == 1
    assert "--yes" in refused.stderr
    done = cli.ok("audit", "purge", "--older-than-days", "1", "--yes")
    assert "purged 0 audit event(s) older than 1 day(s)" in done.stderr
    events = cli.json("audit", "list", "--action", "audit.purge")["events"]
    assert [e["outcome"] for e in events] == ["allowed", "denied"]
    assert events[0]["confirmation"] == "explicit"


def test_audit_list_shows_each_outcome_by_its_own_name(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    assert cli("workflow", "get", "nope").exit_code == 1
    table = cli.ok("audit", "list", "--action", "workflow.").stdout
    assert "allowed" in table
    assert "error" in table
    assert "passed" not in table
    assert "local:local:" not in table


def test_an_export_to_a_path_that_cannot_be_written_fails_before_it_is_audited(cli: AuditCli, tmp_path: Path) -> None:
    cli.ok("workflow", "list")
    missing = cli("audit", "export", "--file", str(tmp_path / "no-such-dir" / "audit.jsonl"))
    kept = tmp_path / "kept.txt"
    kept.write_text("precious")
    (tmp_path / "link.jsonl").symlink_to(kept)
    linked = cli("audit", "export", "--file", str(tmp_path / "link.jsonl"))

    assert missing.exit_code == 1
    assert "cannot write" in missing.stderr
    assert "No such file or directory" in missing.stderr
    assert linked.exit_code == 1
    assert "symbolic link" in linked.stderr
    assert kept.read_text() == "precious"
    actions = [e["action"] for e in cli.json("audit", "list")["events"]]
    assert "audit.export" not in actions  # nothing was exported, so nothing was audited as exported


def test_a_refused_export_leaves_an_existing_file_as_it_was_and_creates_none(cli: AuditCli, tmp_path: Path) -> None:
    existing, fresh = tmp_path / "existing.jsonl", tmp_path / "fresh.jsonl"
    existing.write_text("yesterday's export\n")
    for target in (existing, fresh):
        unknown = cli("audit", "export", "--format", "xml", "--file", str(target))  # a usage error
        assert unknown.exit_code == 2, unknown.output
        assert "Invalid value for '--format'" in unknown.output
        refused = cli("audit", "export", "--env", "nowhere", "--file", str(target))  # refused by the operation
        assert refused.exit_code == 1, refused.output
    assert existing.read_text() == "yesterday's export\n"
    assert not fresh.exists()


def test_an_export_to_a_device_or_a_pipe_is_written_without_truncating_it(cli: AuditCli) -> None:
    cli.ok("workflow", "list")
    result = cli.ok("audit", "export", "--file", "/dev/null")  # /dev/null cannot be truncated
    assert "exported to /dev/null" in result.stderr
