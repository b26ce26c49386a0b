"""``testgate mcp serve`` on stdio: the platform in this process, the caller is the machine's user.

With no control plane configured, the embedded database in the data directory is opened (migrated,
with the default organization and environment created) and every tool call is dispatched as the local
owner with transport ``mcp-stdio``. stdout carries only MCP messages: the SDK's stdio transport points
fd 1 at stderr while it serves, and logs go to stderr.
"""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from testgate.access.principal import local_owner
from testgate.config import Settings
from testgate.mcp.caller import Caller
from testgate.mcp.server import build_server
from testgate.runtime import bootstrap_default, open_platform


def local_settings(settings: Settings, organization: str | None, environment: str | None) -> Settings:
    """The settings with ``--org``/``--env`` applied as the defaults the local caller acts in."""
    update = {
        "default_organization": organization or settings.default_organization,
        "default_environment": environment or settings.default_environment,
    }
    return settings.model_copy(update=update)


async def serve_stdio(settings: Settings, *, organization: str | None = None, environment: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin."""
    settings = local_settings(settings, organization, environment)
    # Claim stdin/stdout first, so nothing the platform starts (migrations, runners) can write to the wire.
    async with stdio_server() as (read, write), open_platform(settings) as platform:
        boot = await bootstrap_default(platform, issue_setup_token=False)
        caller = Caller(
            principal=local_owner(boot.organization.id),
            organization=boot.organization.slug,
            environment=boot.environment.slug,
            transport="mcp-stdio",
        )
        server = build_server(lambda: platform, local=caller)
        await server.run(read, write, server.create_initialization_options())
