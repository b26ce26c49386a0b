"""Where an environment is reached: its hosted MCP endpoint, its REST base, and the console's URL scheme
(what ``build_dashboard_url`` produces and the web console serves)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

LinkKind = Literal["workflows", "workflow", "executions", "execution", "test_cases", "test_case", "audit"]


def mcp_url(base_url: str, org: str, env: str) -> str:
    """An environment's hosted MCP endpoint: also its RFC 9728 resource identifier and its tokens' audience."""
    return f"{base_url.rstrip('/')}/organizations/{quote(org, safe='')}/environments/{quote(env, safe='')}/mcp"


def api_url(base_url: str, org: str, env: str) -> str:
    """An environment's REST base (every environment route is below it)."""
    return f"{base_url.rstrip('/')}/api/v1/organizations/{quote(org, safe='')}/environments/{quote(env, safe='')}"


def console_url(base_url: str, org: str, env: str, kind: LinkKind, ref: str | None = None) -> str:
    """An absolute link into the web console."""
    root = f"{base_url.rstrip('/')}/ui/{quote(org)}/{quote(env)}"
    path = {
        "workflows": "/workflows",
        "workflow": "/workflows/{ref}",
        "executions": "/executions",
        "execution": "/executions/{ref}",
        "test_cases": "/test-cases",
        "test_case": "/test-cases/{ref}",
        "audit": "/audit",
    }[kind]
    if "{ref}" in path:
        if not ref:
            raise ValueError(f"a link to a {kind.replace('_', ' ')} needs its name or id")
        path = path.format(ref=quote(ref, safe=""))
    return root + path
