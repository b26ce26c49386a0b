"""``testgate mcp config``: the exact snippet each client reads, never with a real token in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testgate.cli.credentials import Context, CredentialStore
from testgate.cli.main import app

URL = "https://tg.example.com/organizations/acme/environments/dev/mcp"
ENV = {"TESTGATE_PUBLIC_URL": "https://tg.example.com", "TESTGATE_DEFAULT_ORGANIZATION": "acme"}


@pytest.fixture(autouse=True)
def _no_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No login of the machine's own user decides what these snippets name."""
    monkeypatch.setenv("TESTGATE_CONFIG_DIR", str(tmp_path / "config"))


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["mcp", "config", *args], env=ENV)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_claude_code_gets_an_add_command_for_the_hosted_url_or_the_stdio_server() -> None:
    assert run("--client", "claude-code") == (
        f'claude mcp add --transport http testgate {URL} --header "Authorization: Bearer ${{TESTGATE_TOKEN}}"\n'
    )
    assert run("--client", "claude-code", "--stdio") == "claude mcp add testgate -- testgate mcp serve\n"


def test_vscode_gets_a_servers_entry_reading_the_token_from_the_environment() -> None:
    hosted = json.loads(run("--client", "vscode", "--env", "staging"))
    server = hosted["servers"]["testgate"]
    assert server["type"] == "http"
    assert server["url"] == URL.replace("/dev/", "/staging/")
    assert server["headers"] == {"Authorization": "Bearer ${env:TESTGATE_TOKEN}"}
    local = json.loads(run("--client", "vscode", "--stdio", "--env", "staging"))
    assert local == {
        "servers": {"testgate": {"type": "stdio", "command": "testgate", "args": ["mcp", "serve", "--env", "staging"]}}
    }


def test_cursor_and_claude_desktop_get_mcp_servers_entries() -> None:
    cursor = json.loads(run("--client", "cursor", "--url", "https://other.example/mcp"))
    assert cursor["mcpServers"]["testgate"]["url"] == "https://other.example/mcp"
    desktop_local = json.loads(run("--client", "claude-desktop", "--stdio"))
    assert desktop_local == {"mcpServers": {"testgate": {"command": "testgate", "args": ["mcp", "serve"]}}}
    desktop = json.loads(run("--client", "claude-desktop"))["mcpServers"]["testgate"]
    assert desktop["command"] == "npx"
    assert desktop["args"][:3] == ["-y", "mcp-remote", URL]
    assert "tgp_" not in json.dumps(desktop)


@pytest.mark.parametrize(
    "args",
    [
        ["--client", "vscode", "--url", URL, "--stdio"],
        ["--client", "emacs"],
        ["--client", "cursor", "--url", "notaurl"],  # printed as given, a snippet no client could use
        ["--client", "cursor", "--url", "ftp://tg.example.com/mcp"],
        ["--client", "vscode", "--env", "no such"],  # a space went into the URL unencoded
        ["--client", "vscode", "--stdio", "--org", "Acme!"],
    ],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    assert CliRunner().invoke(app, ["mcp", "config", *args], env=ENV).exit_code == 2


def test_after_a_login_the_hosted_snippet_names_the_environment_logged_in_to(tmp_path: Path) -> None:
    # It named this machine's own default server (http://127.0.0.1:8080) whatever the login.
    resource = "https://tg.corp.example/organizations/qa/environments/nightly/mcp"
    login = Context(
        server="https://tg.corp.example",
        resource=resource,
        organization="qa",
        environment="nightly",
        client_id="tgc_x",
        token_endpoint="https://tg.corp.example/oauth/token",
        revocation_endpoint=None,
        access_token="at",
        refresh_token=None,
        expires_at=0.0,
        scope="testgate",
    )
    CredentialStore(tmp_path / "config").save(login)

    assert json.loads(run("--client", "cursor"))["mcpServers"]["testgate"]["url"] == resource
    other = json.loads(run("--client", "cursor", "--env", "dev"))["mcpServers"]["testgate"]["url"]
    assert other == "https://tg.corp.example/organizations/qa/environments/dev/mcp"
