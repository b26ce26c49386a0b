"""In-process change notifications for executions: what ``wait`` and live logs wait on.

Writers call ``notify(execution_id)`` after committing a change (status, steps or new log lines);
readers wait for the version to move past the one they last saw, instead of polling the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class Events:
    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._changed = asyncio.Condition()

    def version(self, execution_id: str) -> int:
        return self._versions.get(execution_id, 0)

    async def notify(self, execution_id: str) -> None:
        """Record a committed change to ``execution_id`` and wake its waiters."""
        async with self._changed:
            self._versions[execution_id] = self._versions.get(execution_id, 0) + 1
            self._changed.notify_all()

    def forget(self, execution_id: str) -> None:
        self._versions.pop(execution_id, None)

    async def wait_any(self, seen: dict[str, int], timeout: float) -> bool:
        """Wait until any of ``seen``'s executions moved past its version; False on timeout."""

        def moved() -> bool:
            return any(self._versions.get(k, 0) != v for k, v in seen.items())

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(moved), timeout)
            except TimeoutError:
                return moved()
        return True

    def snapshot(self, ids: Iterable[str]) -> dict[str, int]:
        return {i: self._versions.get(i, 0) for i in ids}
