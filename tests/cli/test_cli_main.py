"""The ``testgate`` command itself: version, help, the sub-commands it is made of."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from testgate import __version__


def test_version_prints_the_package_version(cli) -> None:
    assert cli.ok("--version").stdout.strip() == f"testgate {__version__}"


@pytest.mark.parametrize("group", ["workflow", "execution", "results", "token", "db"])
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
