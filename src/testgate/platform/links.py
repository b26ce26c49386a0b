"""The console's URL scheme: what ``build_dashboard_url`` produces and the web console serves."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

LinkKind = Literal["workflows", "workflow", "executions", "execution", "test_cases", "test_case", "audit"]


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
