"""The ``testgate`` command itself: version, help, the sub-commands it is made of."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testgate import __version__
from testgate.cli.main import app


def test_version_prints_the_package_version(cli) -> None:
    assert cli.ok("--version").stdout.strip() == f"testgate {__version__}"


@pytest.mark.parametrize("group", ["workflow", "execution", "results", "token", "member", "environment", "db"])
def test_every_command_group_has_help(cli, group) -> None:
    assert f"Usage: testgate {group}" in cli.ok(group, "--help").stdout


@pytest.mark.parametrize(("module", "name"), [("testgate.cli.audit", "audit"), ("testgate.mcp.cli", "mcp")])
def test_optional_command_groups_are_present_when_their_module_is(cli, module, name) -> None:
    listed = cli.ok("--help").stdout

    assert (f" {name} " in listed) == (importlib.util.find_spec(module) is not None)


def test_an_unknown_command_is_a_usage_error(cli) -> None:
    assert cli("frobnicate").exit_code == 2


def test_the_cli_starts_without_the_server_frameworks_or_the_mcp_sdk() -> None:
    # Every command pays for what ``testgate.cli.main`` imports; the ones that need a server import it when they run.
    probe = "import sys, testgate.cli.main; print(' '.join(m for m in ('fastapi', 'mcp') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)

    assert loaded.stdout.split() == []


def test_an_invalid_setting_is_named_with_its_reason_and_exit_code_2_without_a_secret_value(tmp_path) -> None:
    secret = "too-short-but-secret-state-key"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")},
        "TESTGATE_DATA_DIR": str(tmp_path / "data"),
        "TESTGATE_DATABASE_POOL_SIZE": "0",
        "TESTGATE_MCP_STATE_KEY": secret,
    }
    run = [sys.executable, "-c", "from testgate.cli.main import main; main()", "serve", "--port", "0"]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)

    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "the configuration is invalid; nothing was started" in said
    assert "database_pool_size (TESTGATE_DATABASE_POOL_SIZE): Input should be greater than or equal to 1" in said
    assert "mcp_state_key (TESTGATE_MCP_STATE_KEY)" in said
    assert secret not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was started, nothing was created


def test_a_data_directory_naming_a_file_is_an_invalid_setting_not_a_traceback(tmp_path) -> None:
    file = tmp_path / "not-a-directory"
    file.write_text("keep me")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}, "TESTGATE_DATA_DIR": str(file)}
    run = [sys.executable, "-c", "from testgate.cli.main import main; main()", "workflow", "list"]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=120)

    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert f"data_dir (TESTGATE_DATA_DIR): {file} exists and is not a directory" in said
    assert "Traceback" not in done.stderr
    assert file.read_text() == "keep me"


def _main(tmp_path, extra: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TESTGATE_")}, **extra}
    env["TESTGATE_DATA_DIR"] = str(tmp_path / "data")
    run = [sys.executable, "-c", "from testgate.cli.main import main; main()", *command]
    return subprocess.run(run, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize(
    ("contents", "reason"),
    [("", "is empty"), ("\n", "is empty"), (None, "cannot read"), (b"\xff\xfe", "is not UTF-8 text")],
    ids=["empty", "newline", "missing", "binary"],
)
def test_a_secret_file_that_cannot_be_used_is_an_invalid_setting_not_a_fallback(
    tmp_path, contents: str | bytes | None, reason: str
) -> None:
    # An empty TESTGATE_DATABASE_URL_FILE (a secret not mounted) quietly ran on the embedded SQLite database.
    secret = tmp_path / "database-url"
    if isinstance(contents, str):
        secret.write_text(contents)
    elif isinstance(contents, bytes):
        secret.write_bytes(contents)
    done = _main(tmp_path, {"TESTGATE_DATABASE_URL_FILE": str(secret)}, "db", "current")

    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "the configuration is invalid; nothing was started TESTGATE_DATABASE_URL_FILE: " in said
    assert reason in said
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_list_that_is_not_json_is_an_invalid_setting_saying_how_lists_are_given(tmp_path) -> None:
    done = _main(tmp_path, {"TESTGATE_OAUTH__UPSTREAM__SCOPES": "openid email"}, "db", "current")

    assert done.returncode == 2
    assert 'lists and maps are given as JSON: ["a", "b"]' in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("TESTGATE_DATABASE_URL", "mysql://root:hunter2@db/testgate", "has the scheme 'mysql'"),
        ("TESTGATE_REDIS_URL", "127.0.0.1:6379", "must be a redis://… URL"),
        ("TESTGATE_CELERY__BROKER_URL", "kafka://broker:9092", "has the scheme 'kafka'"),
        ("TESTGATE_CELERY__NOTIFY_URL", "amqp://guest:hunter2@mq//", "has the scheme 'amqp'"),
        ("TESTGATE_PUBLIC_URL", "notaurl", "must be the http(s)://host[:port][/path]"),
        ("TESTGATE_PUBLIC_URL", "ftp://files.example", "must be the http(s)://host[:port][/path]"),
        ("TESTGATE_DEFAULT_ENVIRONMENT", "Bad Env!", "must be a slug"),
        ("TESTGATE_LOG_LEVEL", "verbose", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("TESTGATE_CELERY__SECRETS_KEY", "hunter2", "each key must be a Fernet key"),
    ],
)
def test_a_setting_of_the_wrong_shape_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path, variable: str, value: str, says: str
) -> None:
    # Each of these started: mysql:// and a Redis URL without a scheme crashed later with a traceback, a
    # Kafka broker left every run queued for good, a bare public URL became the OAuth issuer.
    from pydantic import ValidationError

    from testgate.config import Settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings(data_dir=tmp_path / "data")
    # What the CLI prints of it (output.invalid_settings): pydantic's copy of the input is left out.
    said = " ".join(str(e["msg"]) for e in refused.value.errors(include_input=False))
    assert says in said
    assert "hunter2" not in said


def test_an_empty_broker_url_is_unset_not_celerys_own_default() -> None:
    from testgate.config import CelerySettings

    assert CelerySettings(broker_url="").broker_url is None  # type: ignore[arg-type]
    assert CelerySettings(broker_url=" redis://r:6379/0").broker_url is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TESTGATE_CELERY__BROKER_URL", "redis+socket:///run/redis/redis.sock"),  # kombu's unix-socket form
        ("TESTGATE_CELERY__BROKER_URL", "sentinel://s1:26379;sentinel://s2:26379"),
        ("TESTGATE_REDIS_URL", "unix:///run/redis/redis.sock"),
        ("TESTGATE_DATABASE_URL", "postgresql+asyncpg://tg@[2001:db8::5]:5432/testgate?ssl=require"),
        ("TESTGATE_DATABASE_URL", "postgresql:///testgate?host=/run/postgresql"),
        ("TESTGATE_PUBLIC_URL", "https://[2001:db8::5]:8443/testgate"),
        ("TESTGATE_LOG_LEVEL", "warn"),  # Python's logging and Celery take it
    ],
)
def test_a_setting_of_a_shape_that_worked_before_still_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path, variable: str, value: str
) -> None:
    from testgate.config import Settings

    monkeypatch.setenv(variable, value)
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.log_level in ("INFO", "WARNING")


def test_a_url_setting_is_kept_without_the_spaces_around_it(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from testgate.config import Settings

    monkeypatch.setenv("TESTGATE_CELERY__BROKER_URL", "  redis://r:6379/0 ")
    broker = Settings(data_dir=tmp_path / "data").celery.broker_url
    assert broker is not None
    assert broker.get_secret_value() == "redis://r:6379/0"


@pytest.mark.parametrize("broken", ["unreachable", "not-a-database", "unknown-revision"])
def test_a_database_that_cannot_be_used_is_one_line_naming_it_without_its_password(tmp_path: Path, broken: str) -> None:
    # README, exit codes: an error is shown in red with no traceback.
    data = tmp_path / "data"
    data.mkdir()
    env: dict[str, str | None] = {"TESTGATE_DATA_DIR": str(data), "TESTGATE_DATABASE_URL": None}
    if broken == "unreachable":
        env["TESTGATE_DATABASE_URL"] = "postgresql://tg:hunter2-secret@127.0.0.1:1/nodb"
        where = "postgresql://tg:***@127.0.0.1:1/nodb"
    elif broken == "not-a-database":
        (data / "testgate.db").write_bytes(b"garbage, not SQLite" * 100)
        where = str(data / "testgate.db")
    else:  # migrated by a newer testgate
        with sqlite3.connect(data / "testgate.db") as db:
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            db.execute("INSERT INTO alembic_version VALUES ('ffffdeadbeef')")
        where = "revision 'ffffdeadbeef', which this version of testgate does not know"

    for command in (["workflow", "list"], ["audit", "verify"]):
        result = CliRunner().invoke(app, command, env=env, catch_exceptions=False)

        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        said = " ".join(result.stderr.split())
        assert said.startswith("error: cannot use the database at"), said
        assert where in said
        assert "hunter2" not in result.output
        assert len(result.stderr.splitlines()) <= 3
