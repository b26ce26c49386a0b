"""Client configuration for testgate's MCP server: the exact snippet each supported client reads.

Hosted snippets reference the API token through an environment variable (``TESTGATE_TOKEN``) or a
placeholder to replace; a real token is never printed.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any, Literal

from testgate.platform import links

Client = Literal["claude-code", "vscode", "cursor", "claude-desktop"]
CLIENTS: tuple[Client, ...] = ("claude-code", "vscode", "cursor", "claude-desktop")
TOKEN_ENV = "TESTGATE_TOKEN"
# Where each client reads its configuration (shown next to the snippet).
LOCATIONS: dict[Client, str] = {
    "claude-code": "run in your project (or add --scope user)",
    "vscode": ".vscode/mcp.json",
    "cursor": "~/.cursor/mcp.json",
    "claude-desktop": "claude_desktop_config.json (Settings > Developer > Edit Config)",
}


def hosted_url(base_url: str, organization: str, environment: str) -> str:
    """An environment's hosted MCP endpoint."""
    return links.mcp_url(base_url, organization, environment)


def stdio_command(organization: str | None = None, environment: str | None = None) -> list[str]:
    """The command a client launches for the local stdio server."""
    command = ["testgate", "mcp", "serve"]
    if organization:
        command += ["--org", organization]
    if environment:
        command += ["--env", environment]
    return command


def snippet(client: Client, *, name: str = "testgate", url: str | None = None, command: Sequence[str] = ()) -> str:
    """The configuration for ``client``: the hosted ``url`` if given, else the stdio ``command``."""
    if client == "claude-code":
        return _claude_code(name, url, command)
    if url is not None:
        return _json(_hosted(client, name, url))
    return _json(_stdio(client, name, list(command)))


def _claude_code(name: str, url: str | None, command: Sequence[str]) -> str:
    if url is None:
        return shlex.join(["claude", "mcp", "add", name, "--", *command])
    # Double quotes: the shell substitutes the variable, so the token never appears in this output.
    header = f'"Authorization: Bearer ${{{TOKEN_ENV}}}"'
    return f"claude mcp add --transport http {shlex.quote(name)} {shlex.quote(url)} --header {header}"


def _hosted(client: Client, name: str, url: str) -> dict[str, Any]:
    if client == "vscode":
        server = {"type": "http", "url": url, "headers": {"Authorization": f"Bearer ${{env:{TOKEN_ENV}}}"}}
        return {"servers": {name: server}}
    if client == "cursor":
        return {"mcpServers": {name: {"url": url, "headers": {"Authorization": f"Bearer ${{env:{TOKEN_ENV}}}"}}}}
    # Claude Desktop launches stdio servers only: mcp-remote bridges to the hosted endpoint. The header
    # travels through an environment variable because the app does not escape spaces inside args.
    bridge = {
        "command": "npx",
        "args": ["-y", "mcp-remote", url, "--header", "Authorization:${TESTGATE_AUTH_HEADER}"],
        "env": {"TESTGATE_AUTH_HEADER": f"Bearer <your {TOKEN_ENV}>"},
    }
    return {"mcpServers": {name: bridge}}


def _stdio(client: Client, name: str, command: list[str]) -> dict[str, Any]:
    server: dict[str, Any] = {"command": command[0], "args": command[1:]}
    if client == "vscode":
        return {"servers": {name: {"type": "stdio", **server}}}
    return {"mcpServers": {name: server}}


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2)
