"""Artifacts in S3-compatible object storage: kept by a real run, bounded, read back and downloaded as streams.

Every test talks HTTP to a real S3 API (moto's server on a loopback port) through boto3, as testgate does
to AWS S3, MinIO or Ceph; each has a bucket of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from tests.conftest import S3
from tests.platform.test_artifacts import BINARY, LOG, limited, new_execution
from tests.runner.conftest import Harness

from testgate.access import tokens
from testgate.access.principal import Role
from testgate.app import create_app
from testgate.config import ArtifactSettings, Settings
from testgate.errors import NotFound
from testgate.platform import artifacts, tenancy
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

API = "/api/v1/organizations/acme/environments/dev"
# The workflow writes a text log (with two errors), a binary and a nested report; it keeps all of them.
WRITE = (
    'mkdir -p out/deep && i=1; while [ $i -le 100 ]; do echo "line $i"; i=$((i+1)); done > out/app.log'
    " && echo 'line 7 ERROR disk full' >> out/app.log && echo 'line 8 ERROR disk full' >> out/app.log"
    " && printf '\\211PNG\\r\\n\\032\\n\\000\\001\\002' > out/shot.png && echo nested > out/deep/report.txt"
)


@pytest.fixture
def settings(settings: Settings, s3: S3) -> Settings:
    return settings.model_copy(update={"artifacts": s3.settings()})


@pytest.fixture
async def runner(platform: Platform) -> AsyncIterator[Harness]:
    executor = LocalExecutor(platform)
    await executor.start()
    platform.executor = executor
    yield Harness(platform, executor)
    await executor.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "app.log").write_text(LOG)
    (root / "out").mkdir()
    (root / "out" / "shot.png").write_bytes(BINARY)
    return root


async def rest_download(platform: Platform, execution_id: str, path: str) -> httpx.Response:
    """``GET …/artifacts/<path>?download=1`` on the real app, with an admin token."""
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        issued = await tokens.issue(
            session, organization_id=org.id, name="t", role=Role.ADMIN, grants={}, created_by=None, expires_at=None
        )
    transport = httpx.ASGITransport(app=create_app(platform.settings, platform=platform))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        url = f"{API}/executions/{execution_id}/artifacts/{path}"
        return await client.get(url, params={"download": 1}, headers={"Authorization": f"Bearer {issued.secret}"})


async def test_a_run_keeps_its_artifacts_in_the_bucket_and_they_are_read_and_downloaded_back(
    platform: Platform, runner: Harness, s3: S3
) -> None:
    done = await runner.run([{"name": "write", "shell": WRITE}], artifacts={"paths": ["out/**"]})
    execution_id = done.row.id

    assert done.row.status == "passed"
    assert "artifacts: kept 3 file(s) matching out/**" in done.texts
    assert s3.keys() == [f"runs/{execution_id}/{p}" for p in ("out/app.log", "out/deep/report.txt", "out/shot.png")]
    stored, metadata = s3.get(f"{execution_id}/out/app.log")
    async with platform.db.session() as session:
        listed = {a.path: a for a in await artifacts.list_artifacts(session, execution_id)}
        lines = await artifacts.read_artifact(
            platform, session, execution_id, "out/app.log", start_line=99, end_line=101
        )
        found = await artifacts.read_artifact(platform, session, execution_id, "out/app.log", grep="ERROR", context=1)
        binary = await artifacts.read_artifact(platform, session, execution_id, "out/shot.png")
    assert stored.startswith(b"line 1\nline 2\n")
    assert metadata == {"sha256": hashlib.sha256(stored).hexdigest()} == {"sha256": listed["out/app.log"].sha256}
    assert listed["out/app.log"].size == len(stored)
    assert (lines.content, lines.lines) == ("line 99\nline 100\nline 7 ERROR disk full\n", (99, 101))
    assert found.content == "100-line 100\n101:line 7 ERROR disk full\n102:line 8 ERROR disk full\n"
    assert (found.matches, found.total_lines) == (2, 102)
    assert (binary.binary, binary.content) == (True, None)
    assert not platform.settings.artifacts_dir.exists()  # nothing went to the filesystem store

    download = await rest_download(platform, execution_id, "out/shot.png")
    assert download.status_code == 200
    assert download.content == s3.get(f"{execution_id}/out/shot.png")[0]
    assert hashlib.sha256(download.content).hexdigest() == listed["out/shot.png"].sha256
    assert download.headers["content-disposition"] == 'attachment; filename="shot.png"'
    assert download.headers["content-length"] == str(listed["out/shot.png"].size)
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-security-policy"] == "sandbox; default-src 'none'"


async def test_a_large_artifact_goes_up_in_parts_and_streams_back_whole(
    platform: Platform, tmp_path: Path, s3: S3
) -> None:
    # Over the 8 MiB multipart threshold: three parts, read from the staging file one at a time.
    data = hashlib.sha256(b"seed").digest() * (20 * 1024 * 1024 // 32)
    (tmp_path / "big.bin").write_bytes(data)
    execution_id = await new_execution(platform)

    report = await artifacts.collect(platform, execution_id, tmp_path, ["big.bin"])
    async with platform.db.session() as session:
        row = await artifacts.artifact_row(session, execution_id, "big.bin")
    stored = await artifacts.download(platform, row)

    assert report.problems == []
    assert not isinstance(stored, Path)
    chunks = [chunk async for chunk in stored.chunks]
    assert stored.size == len(data) == sum(map(len, chunks))
    assert max(map(len, chunks)) <= 1024 * 1024
    assert hashlib.sha256(b"".join(chunks)).hexdigest() == row.sha256 == hashlib.sha256(data).hexdigest()
    assert s3.get(f"{execution_id}/big.bin")[1] == {"sha256": row.sha256}
    assert list((platform.settings.data_dir / "staging").iterdir()) == []  # the staging copy is gone


async def test_the_per_file_and_total_limits_hold_on_s3_and_nothing_is_uploaded_for_a_skipped_file(
    platform: Platform, workspace: Path, s3: S3
) -> None:
    platform = limited(platform, max_artifact_bytes=1024, max_artifacts_total_bytes=1500)
    (workspace / "logs" / "big.log").write_text("x" * 1025)
    (workspace / "logs" / "a.log").write_text("a" * 1000)
    (workspace / "logs" / "b.log").write_text("b" * 1000)
    execution_id = await new_execution(platform)

    report = await artifacts.collect(platform, execution_id, workspace, ["logs/*.log", "out/*.png"])

    assert [row.path for row in report.rows] == ["logs/a.log"]
    assert report.problems == [
        "logs/app.log: would pass the limit on all artifacts of this execution; skipped",
        "logs/b.log: would pass the limit on all artifacts of this execution; skipped",
        "logs/big.log: larger than the artifact limit of 1024 bytes; skipped",
        "out/shot.png: larger than the artifact limit of 1024 bytes; skipped",
    ]
    assert s3.keys() == [f"runs/{execution_id}/logs/a.log"]


async def test_the_file_count_limit_holds_across_collects_on_s3(platform: Platform, tmp_path: Path, s3: S3) -> None:
    platform = limited(platform, max_artifact_files=2)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.txt").write_text(name)
    execution_id = await new_execution(platform)

    first = await artifacts.collect(platform, execution_id, tmp_path, ["*.txt"])
    again = await artifacts.collect(platform, execution_id, tmp_path, ["*.txt"])

    assert [row.path for row in first.rows] == ["a.txt", "b.txt"]
    assert first.problems == ["more than 2 files matched; the rest were skipped"]
    assert again.rows == []
    assert s3.keys() == [f"runs/{execution_id}/a.txt", f"runs/{execution_id}/b.txt"]


async def test_an_object_missing_from_the_bucket_is_not_found_for_reads_and_downloads(
    platform: Platform, workspace: Path, s3: S3
) -> None:
    execution_id = await new_execution(platform)
    await artifacts.collect(platform, execution_id, workspace, ["logs", "out"])
    for path in ("logs/app.log", "out/shot.png"):
        s3.client().delete_object(Bucket=s3.bucket, Key=f"runs/{execution_id}/{path}")

    async with platform.db.session() as session:
        with pytest.raises(NotFound, match=r"artifact 'logs/app\.log' is missing from storage"):
            await artifacts.read_artifact(platform, session, execution_id, "logs/app.log", grep="ERROR")
        with pytest.raises(NotFound, match=r"artifact 'out/shot\.png' is missing from storage"):
            await artifacts.read_artifact(platform, session, execution_id, "out/shot.png")
    download = await rest_download(platform, execution_id, "logs/app.log")

    assert download.status_code == 404
    assert download.json()["detail"] == "artifact 'logs/app.log' is missing from storage"


async def test_a_bucket_that_does_not_exist_is_a_problem_line_and_the_run_still_finishes(
    platform: Platform, runner: Harness, s3: S3
) -> None:
    platform.settings.artifacts = s3.settings(s3_bucket="tg-no-such-bucket")
    done = await runner.run(
        [{"name": "write", "shell": "mkdir out && echo one > out/a.txt && echo two > out/b.txt"}],
        artifacts={"paths": ["out/*"]},
    )
    async with platform.db.session() as session:
        kept = await artifacts.list_artifacts(session, done.row.id)

    assert done.row.status == "passed"
    assert kept == []
    problem = f"artifacts: out/a.txt: not stored: upload to s3://tg-no-such-bucket/runs/{done.row.id}/out/a.txt failed"
    assert [t for t in done.texts if t.startswith("artifacts:")] == [
        "artifacts: kept 0 file(s) matching out/*",
        f"{problem}: NoSuchBucket: The specified bucket does not exist",
        "artifacts: 1 more file(s) not stored: the artifact store failed",
    ]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_endpoint_is_a_problem_line_naming_it_and_never_the_credentials(
    platform: Platform, workspace: Path, s3: S3
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = platform.settings.model_copy(update={"artifacts": s3.settings(s3_endpoint_url=endpoint)})
    down = dataclasses.replace(platform, settings=settings)
    execution_id = await new_execution(down)

    report = await artifacts.collect(down, execution_id, workspace, ["logs", "out"])

    assert report.rows == []
    assert report.problems == [
        f"logs/app.log: not stored: upload to s3://{s3.bucket}/runs/{execution_id}/logs/app.log failed: "
        f'Could not connect to the endpoint URL: "{endpoint}/{s3.bucket}/runs/{execution_id}/logs/app.log"',
        "1 more file(s) not stored: the artifact store failed",
    ]
    assert "testgate-test-secret" not in "".join(report.problems)
    assert s3.keys() == []


def test_the_s3_store_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="store=s3 needs a bucket: set TESTGATE_ARTIFACTS__S3_BUCKET"):
        ArtifactSettings(store="s3")


def test_an_access_key_needs_its_secret() -> None:
    with pytest.raises(ValidationError, match="set both s3_access_key_id and s3_secret_access_key, or neither"):
        ArtifactSettings(store="s3", s3_bucket="b", s3_access_key_id="AKIA")


def test_the_store_is_configured_from_the_environment_with_the_secret_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__STORE", "s3")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_BUCKET", "ci-artifacts")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_PREFIX", "/testgate/prod/")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_ENDPOINT_URL", "https://minio.internal:9000")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_ACCESS_KEY_ID", "testgate")
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_ADDRESSING_STYLE", "path")

    settings = Settings(data_dir=tmp_path)

    assert settings.artifacts.s3_bucket == "ci-artifacts"
    assert settings.artifacts.s3_prefix == "testgate/prod"
    assert settings.artifacts.s3_secret_access_key is not None
    assert settings.artifacts.s3_secret_access_key.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TESTGATE_ARTIFACTS__S3_ENDPOINT_URL", "minio:9000"), ("TESTGATE_ARTIFACTS__STORE", "gcs")],
)
def test_a_malformed_store_setting_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv("TESTGATE_ARTIFACTS__S3_BUCKET", "b")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("TESTGATE_ARTIFACTS__").lower()):
        Settings(data_dir=tmp_path)


def test_the_filesystem_store_can_live_outside_the_data_directory(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).artifacts_dir == tmp_path / "artifacts"
    moved = Settings(data_dir=tmp_path, artifacts=ArtifactSettings(path=tmp_path / "shared"))
    assert moved.artifacts_dir == tmp_path / "shared"
