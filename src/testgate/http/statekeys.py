"""The keys sealing 2026-era MCP ``requestState``: shared through settings, or generated once per data directory.

Replicas behind one load balancer MUST share them (``TESTGATE_MCP_STATE_KEY`` or ``..._FILE``), newest
first: a retry carrying state sealed by one replica then unseals on any other. Without the setting, a key
is generated into ``data_dir/mcp-state.key`` (mode 0600) and reused across restarts of this replica.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from testgate.config import Settings

KEY_FILE = "mcp-state.key"


def state_keys(settings: Settings) -> list[str]:
    """The key ring, newest first."""
    if settings.mcp_state_key is not None:
        return [k.strip() for k in settings.mcp_state_key.get_secret_value().split(",") if k.strip()]
    return [read_or_create(settings.data_dir / KEY_FILE)]


def read_or_create(path: Path) -> str:
    """The key in ``path``, created (64 hex characters, mode 0600) if absent; refused if others can read it."""
    if not path.exists():
        _create(path)
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} is readable by other users; chmod 600 it")
    return path.read_text(encoding="utf-8").strip()


def _create(path: Path) -> None:
    """Write a new key beside ``path`` and link it into place, so a concurrent reader never sees half a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_hex(32))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process created it first: everyone uses that one
    finally:
        draft.unlink()
