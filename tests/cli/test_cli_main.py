"""The ``testgate`` command itself: version, help, the sub-commands it is made of."""

from __future__ import annotations

import importlib.util
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
