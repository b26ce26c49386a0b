"""Artifacts: collected from a workspace within bounds, never through a link out of it, read back safely."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from testgate.config import ArtifactSettings, RunnerSettings
from testgate.errors import InvalidInput, NotFound
from testgate.platform import artifacts, executions, globs, tenancy
from testgate.platform.context import Platform
from testgate.platform.textread import MAX_LINE, read_text
from testgate.store.executions import ArtifactRow

LOG = "".join(f"line {i}{' ERROR disk full' if i in (5, 6, 40) else ''}\n" for i in range(1, 101))
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4


async def new_execution(platform: Platform) -> str:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
        row = await executions.create_external(session, env, name="ci", tags={}, created_by="test")
        return row.id


def limited(platform: Platform, **limits: int) -> Platform:
    runner = RunnerSettings(**limits)
    return dataclasses.replace(platform, settings=platform.settings.model_copy(update={"runner": runner}))


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "logs" / "deep").mkdir(parents=True)
    (root / "logs" / "app.log").write_text(LOG)
    (root / "logs" / "deep" / "trace.txt").write_text("héllo\n")
    (root / "out").mkdir()
    (root / "out" / "shot.png").write_bytes(BINARY)
    (root / "out" / "report.html").write_text("<html></html>")
    return root


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    return outside / "passwd"


async def test_collect_copies_matches_with_hash_type_and_owner_only_modes(platform: Platform, workspace: Path) -> None:
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["logs", "out/*.png", "out/*.png"])
    assert report.problems == []
    by_path = {row.path: row for row in report.rows}
    assert sorted(by_path) == ["logs/app.log", "logs/deep/trace.txt", "out/shot.png"]
    png = by_path["out/shot.png"]
    assert (png.size, png.is_text, png.media_type) == (len(BINARY), False, "image/png")
    assert png.sha256 == hashlib.sha256(BINARY).hexdigest()
    assert png.storage_key == f"{execution_id}/out/shot.png"
    assert (by_path["logs/app.log"].is_text, by_path["logs/app.log"].media_type) == (True, "text/plain")
    stored = platform.settings.artifacts_dir / execution_id
    assert (stored / "out" / "shot.png").read_bytes() == BINARY
    assert stat.S_IMODE((stored / "out" / "shot.png").stat().st_mode) == 0o600
    for directory in (stored, stored / "logs", stored / "logs" / "deep"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    async with platform.db.session() as session:
        listed = await artifacts.list_artifacts(session, execution_id)
    assert [a.path for a in listed] == ["logs/app.log", "logs/deep/trace.txt", "out/shot.png"]


async def test_a_symlink_out_of_the_workspace_is_refused_and_nothing_is_written(
    platform: Platform, workspace: Path, secret: Path
) -> None:
    # CWE-59 link following: links to /etc/passwd-like files or outside directories are never read.
    os.symlink(secret, workspace / "logs" / "passwd")
    os.symlink(secret.parent, workspace / "logs" / "outdir")
    os.symlink(secret.parent, workspace / "escape")
    os.symlink("/etc/passwd", workspace / "etc-passwd")
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["logs/**", "escape/*", "etc-passwd"])
    assert sorted(report.problems) == [
        "escape: resolves outside the workspace; refused",
        "etc-passwd: resolves outside the workspace; refused",
        "logs/outdir: a symlink that resolves outside the workspace; refused",
        "logs/passwd: a symlink that resolves outside the workspace; refused",
    ]
    assert sorted(row.path for row in report.rows) == ["logs/app.log", "logs/deep/trace.txt"]
    written = {p.name for p in (platform.settings.artifacts_dir / execution_id).rglob("*")}
    assert not written & {"passwd", "outdir", "escape", "etc-passwd"}


async def test_a_symlink_inside_the_workspace_is_kept_by_its_own_path(platform: Platform, workspace: Path) -> None:
    os.symlink(workspace / "logs" / "app.log", workspace / "out" / "latest.log")
    os.symlink(workspace / "logs", workspace / "out" / "logs-link")
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["out/*.log", "out/logs-link"])
    assert [row.path for row in report.rows] == ["out/latest.log"]
    assert report.problems == ["out/logs-link: a symlink to a directory; not followed"]


async def test_a_pattern_that_climbs_out_is_refused(platform: Platform, workspace: Path, secret: Path) -> None:
    # CWE-22 path traversal: patterns are relative and never contain '..'.
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["../outside/*", str(secret)])
    assert report.rows == []
    assert len(report.problems) == 2


async def test_a_file_over_the_per_file_limit_is_skipped(platform: Platform, workspace: Path) -> None:
    platform = limited(platform, max_artifact_bytes=1024)
    (workspace / "logs" / "big.log").write_text("x" * 1025)
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["logs/*.log", "out/*.png"])
    assert [row.path for row in report.rows] == ["logs/app.log"]
    assert report.problems == [
        "logs/big.log: larger than the artifact limit of 1024 bytes; skipped",
        "out/shot.png: larger than the artifact limit of 1024 bytes; skipped",
    ]
    assert not (platform.settings.artifacts_dir / execution_id / "out" / "shot.png").exists()
    assert not (platform.settings.artifacts_dir / execution_id / "logs" / "big.log").exists()


async def test_the_total_limit_keeps_what_fits(platform: Platform, tmp_path: Path) -> None:
    platform = limited(platform, max_artifacts_total_bytes=2500)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text("x" * 1000)
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, tmp_path, ["*.txt"])
    assert [row.path for row in report.rows] == ["a.txt", "b.txt"]
    assert report.problems == ["c.txt: would pass the limit on all artifacts of this execution; skipped"]


async def test_the_file_count_limit_holds_across_collects(platform: Platform, tmp_path: Path) -> None:
    platform = limited(platform, max_artifact_files=2)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text(name)
    execution_id = await new_execution(platform)
    first = await artifacts.collect(platform, execution_id, tmp_path, ["*.txt"])
    again = await artifacts.collect(platform, execution_id, tmp_path, ["*.txt"])
    assert [row.path for row in first.rows] == ["a.txt", "b.txt"]
    assert first.problems == ["more than 2 files matched; the rest were skipped"]
    assert again.rows == []


async def test_a_fifo_is_skipped_without_blocking(platform: Platform, workspace: Path) -> None:
    os.mkfifo(workspace / "logs" / "pipe")
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["logs/pipe"])
    assert report.rows == []
    assert report.problems == ["logs/pipe: not a regular file; skipped"]


async def test_nothing_matching_is_reported(platform: Platform, workspace: Path) -> None:
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["coverage/**", "*.zip"])
    assert (report.rows, report.problems) == ([], ["no artifact matched coverage/**, *.zip"])


async def test_collect_for_an_unknown_execution_fails(platform: Platform, workspace: Path) -> None:
    with pytest.raises(NotFound):
        await artifacts.collect(platform, "nope", workspace, ["logs"])


@pytest.mark.parametrize(
    ("head", "text"),
    [
        (b"plain\n", True),
        (b"", True),
        ("héllo".encode(), True),
        ("é".encode()[:1], True),  # a character cut by the sample's end
        (b"a\x00b", False),
        ("Prüfung: café".encode("cp1252"), True),  # a legacy 8-bit encoding (Windows-1252 / Latin-1)
        (bytes(range(1, 256)), False),  # not UTF-8, and a tenth of it control bytes
        ("naïve\x1b[31m red\x1b[0m\r\n".encode("latin-1"), True),  # colour codes and CRLF are text
        (BINARY[:64], False),
    ],
)
def test_binary_detection(head: bytes, text: bool) -> None:
    assert artifacts.looks_like_text(head) is text


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*.xml", "a.xml", True),
        ("**/*.xml", "x/y/a.xml", True),
        ("reports/*.xml", "reports/x/a.xml", False),
        ("reports/**", "reports/x/a.xml", True),
        ("r?.[tx]ml", "r1.xml", True),
        ("r?.[!x]ml", "r1.xml", False),
        ("a+b.txt", "a+b.txt", True),
        ("a+b.txt", "aab.txt", False),
    ],
)
def test_glob_patterns(pattern: str, path: str, matches: bool) -> None:
    assert (globs.translate(globs.split_pattern(pattern)).fullmatch(path) is not None) is matches


async def collected(platform: Platform, workspace: Path) -> str:
    execution_id = await new_execution(platform)
    await artifacts.collect(platform, execution_id, workspace, ["logs", "out"])
    return execution_id


async def test_reading_a_line_range(platform: Platform, workspace: Path) -> None:
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        part = await artifacts.read_artifact(platform, session, execution_id, "logs/app.log", start_line=2, end_line=4)
        whole = await artifacts.read_artifact(platform, session, execution_id, "logs/app.log")
    assert part.content == "line 2\nline 3\nline 4\n"
    assert (part.lines, part.total_lines, part.truncated, part.binary) == ((2, 4), None, False, False)
    assert whole.content == LOG
    assert (whole.lines, whole.total_lines, whole.truncated, whole.matches) == ((1, 100), 100, False, None)


async def test_grep_returns_numbered_matches_with_context(platform: Platform, workspace: Path) -> None:
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        found = await artifacts.read_artifact(
            platform, session, execution_id, "logs/app.log", grep=r"ERROR \w+", context=1
        )
        capped = await artifacts.read_artifact(
            platform, session, execution_id, "logs/app.log", grep="ERROR", max_matches=2
        )
    assert found.content == (
        "4-line 4\n5:line 5 ERROR disk full\n6:line 6 ERROR disk full\n7-line 7\n"
        "--\n39-line 39\n40:line 40 ERROR disk full\n41-line 41\n"
    )
    assert (found.matches, found.total_lines, found.truncated) == (3, 100, False)
    assert capped.content == "5:line 5 ERROR disk full\n6:line 6 ERROR disk full\n"
    assert (capped.matches, capped.truncated, capped.total_lines) == (2, True, None)


async def test_reads_are_capped_in_bytes(platform: Platform, workspace: Path) -> None:
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        read = await artifacts.read_artifact(platform, session, execution_id, "logs/app.log", max_bytes=21)
    assert read.content == "line 1\nline 2\nline 3\n"
    assert (read.lines, read.truncated, read.total_lines) == ((1, 3), True, None)


async def test_a_binary_artifact_is_not_returned(platform: Platform, workspace: Path) -> None:
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        read = await artifacts.read_artifact(platform, session, execution_id, "out/shot.png", grep="PNG")
    assert (read.binary, read.content, read.is_text) == (True, None, False)
    assert read.message == "binary file (image/png); download it instead"


async def test_a_bad_regex_or_range_is_invalid_input(platform: Platform, workspace: Path) -> None:
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        with pytest.raises(InvalidInput, match="not a valid regular expression"):
            await artifacts.read_artifact(platform, session, execution_id, "logs/app.log", grep="(unclosed")
        with pytest.raises(InvalidInput, match="line range"):
            await artifacts.read_artifact(platform, session, execution_id, "logs/app.log", start_line=5, end_line=2)


async def test_only_recorded_paths_can_be_read(platform: Platform, workspace: Path) -> None:
    # CWE-22 path traversal: a caller's path is looked up among the rows, never opened as given.
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        for path in ("logs/missing.log", "../../../etc/passwd", "/etc/passwd", "logs/../logs/app.log"):
            with pytest.raises(NotFound):
                await artifacts.read_artifact(platform, session, execution_id, path)
        with pytest.raises(NotFound):
            await artifacts.read_artifact(platform, session, "other-execution", "logs/app.log")


def same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


async def test_a_storage_key_outside_the_artifacts_directory_is_never_opened(
    platform: Platform, workspace: Path, secret: Path
) -> None:
    # CWE-22: even a tampered row cannot point storage outside the artifacts directory.
    execution_id = await collected(platform, workspace)
    async with platform.db.session() as session:
        row = await session.scalar(select(ArtifactRow).where(ArtifactRow.path == "logs/app.log"))
        assert row is not None
        row.storage_key = f"../../{secret.parent.name}/{secret.name}"
        assert same_file(platform.settings.artifacts_dir / row.storage_key, secret)
        with pytest.raises(NotFound, match="no valid storage path"):
            artifacts.open_artifact(platform, row)
        row.storage_key = f"{execution_id}/logs/app.log"
        assert artifacts.open_artifact(platform, row).read_text() == LOG


def test_a_very_long_line_is_cut_not_held_whole(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("a" * (MAX_LINE * 3) + "\nnext\n")
    read = read_text(path, start_line=2)
    assert (read.content, read.lines, read.total_lines) == ("next\n", (2, 2), 2)
    first = read_text(path, end_line=1, max_bytes=10)
    assert (first.content, first.lines, first.truncated) == ("a" * 10, (1, 1), True)


async def test_an_artifact_directory_that_cannot_be_written_is_named_as_the_problem(
    platform: Platform, workspace: Path, tmp_path: Path
) -> None:
    # It read "logs/app.log: No such file or directory", as if the workspace's file were missing.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    store = ArtifactSettings(path=blocked / "artifacts")
    platform = dataclasses.replace(platform, settings=platform.settings.model_copy(update={"artifacts": store}))
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, workspace, ["logs/**"])

    assert report.rows == []
    assert report.problems == [
        f"logs/app.log: not stored: the artifact directory {blocked / 'artifacts'} cannot be written: Not a directory",
        "1 more file(s) not stored: the artifact store failed",
    ]


async def test_a_log_in_a_legacy_8_bit_encoding_is_text_and_reads_as_its_characters(
    platform: Platform, tmp_path: Path
) -> None:
    # A Windows-1252 / Latin-1 log (older Java and Windows tools) was "binary; download it instead".
    (tmp_path / "legacy.log").write_bytes("Prüfung fehlgeschlagen: café — 3 ERRORS\n".encode("cp1252") * 3)
    (tmp_path / "noise.bin").write_bytes(bytes(range(1, 256)) * 8)  # no NUL, not UTF-8, control bytes: binary
    execution_id = await new_execution(platform)
    report = await artifacts.collect(platform, execution_id, tmp_path, ["legacy.log", "noise.bin"])
    async with platform.db.session() as session:
        legacy = await artifacts.read_artifact(platform, session, execution_id, "legacy.log", grep="ERRORS")
        noise = await artifacts.read_artifact(platform, session, execution_id, "noise.bin")

    assert {row.path: row.is_text for row in report.rows} == {"legacy.log": True, "noise.bin": False}
    assert legacy.content is not None
    assert legacy.content.splitlines()[0].endswith("Prüfung fehlgeschlagen: café — 3 ERRORS")
    assert legacy.matches == 3
    assert (noise.binary, noise.content) == (True, None)


async def test_a_log_longer_than_the_sniffed_head_reads_on_past_it(platform: Platform, tmp_path: Path) -> None:
    # The first SNIFF_BYTES are read to choose the encoding, then handed back in front of the rest.
    lines = [f"line {n} {'ü' if n % 2 else 'u'}\n" for n in range(1, 20001)]
    (tmp_path / "long.log").write_text("".join(lines), encoding="cp1252")
    execution_id = await new_execution(platform)
    await artifacts.collect(platform, execution_id, tmp_path, ["long.log"])
    async with platform.db.session() as session:
        first = await artifacts.read_artifact(platform, session, execution_id, "long.log", start_line=1, end_line=2)
        last = await artifacts.read_artifact(platform, session, execution_id, "long.log", start_line=19999)

    assert first.content == "line 1 ü\nline 2 u\n"
    assert last.content == "line 19999 ü\nline 20000 u\n"
    assert last.total_lines == 20000
