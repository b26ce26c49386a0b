"""The platform's services, assembled once per process and handed to every operation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from testgate.config import Settings
from testgate.platform.events import Events
from testgate.store.db import Database

if TYPE_CHECKING:
    from testgate.runner.base import Executor


@dataclass
class Platform:
    settings: Settings
    db: Database
    events: Events = field(default_factory=Events)
    executor: Executor | None = None

    def require_executor(self) -> Executor:
        if self.executor is None:
            raise RuntimeError("no executor is configured in this process")
        return self.executor
