"""The executor protocol: what the control plane needs from whatever runs executions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Executor(Protocol):
    async def start(self) -> None:
        """Begin accepting work; reconcile executions a crashed process left behind."""

    async def submit(self, execution_id: str, secrets: Mapping[str, str]) -> None:
        """Queue a created execution. ``secrets`` holds sensitive config values, never stored."""

    async def abort(self, execution_id: str) -> bool:
        """Stop an execution (its whole process group); False if it is not running here."""

    async def close(self) -> None:
        """Stop accepting work and abort what is running."""
