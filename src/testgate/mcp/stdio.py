"""``testgate mcp serve`` on stdio: the platform in this process, the caller is the machine's user.

With no control plane configured, the embedded database in the data directory is opened (migrated,
with the default organization and environment created) and every tool call is dispatched as the local
owner with transport ``mcp-stdio``. stdout carries only MCP messages: the SDK's stdio transport points
fd 1 at stderr while it serves, and logs go to stderr.
"""

from __future__ import annotations

from mcp.server.stdio import stdio_server
from sqlalchemy import func, select

from testgate.access.principal import local_owner
from testgate.config import Settings
from testgate.errors import StorageUnavailable
from testgate.mcp.caller import Caller
from testgate.mcp.server import build_server
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.runtime import bootstrap_default, open_platform
from testgate.store.db import TROUBLE, unusable
from testgate.store.tenancy import Environment, Organization


def local_settings(settings: Settings, organization: str | None, environment: str | None) -> Settings:
    """The settings with ``--org``/``--env`` applied as the defaults the local caller acts in."""
    update = {
        "default_organization": organization or settings.default_organization,
        "default_environment": environment or settings.default_environment,
    }
    return settings.model_copy(update=update)


async def serve_stdio(settings: Settings, *, organization: str | None = None, environment: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin."""
    chosen = local_settings(settings, organization, environment)
    named = bool(organization or environment)
    # Checked before the streams are claimed: a refusal inside them would wait for stdin to close. So the
    # database is opened (migrated) and the scope found once here, and an unusable database is one line.
    try:
        async with open_platform(chosen, executor=False) as platform:
            await _scope(platform, named=named)
    except TROUBLE as exc:
        raise StorageUnavailable(unusable(chosen.effective_database_url, exc)) from None
    # Claim stdin/stdout first, so nothing the platform starts (migrations, runners) can write to the wire.
    async with stdio_server() as (read, write), open_platform(chosen) as platform:
        org, env = await _scope(platform, named=named)
        caller = Caller(
            principal=local_owner(org.id), organization=org.slug, environment=env.slug, transport="mcp-stdio"
        )
        server = build_server(lambda: platform, local=caller)
        await server.run(read, write, server.create_initialization_options())


async def _scope(platform: Platform, *, named: bool) -> tuple[Organization, Environment]:
    """The organization and environment to act in (the platform's defaults, ``--org``/``--env`` applied).

    What the defaults name is created when missing, as on every start. What ``--org``/``--env`` name is
    created only on an empty database (a first start); afterwards a name that does not exist is refused,
    as the CLI refuses it: a typo must not open an empty environment the agent would then work in.
    """
    settings = platform.settings
    if named:
        async with platform.db.session(write=False) as session:
            if await session.scalar(select(func.count()).select_from(Organization)):
                org = await tenancy.organization_by_slug(session, settings.default_organization)
                return org, await tenancy.environment_by_slug(session, org, settings.default_environment)
    boot = await bootstrap_default(platform, issue_setup_token=False)
    return boot.organization, boot.environment
