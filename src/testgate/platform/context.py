"""The platform's services, assembled once per process and handed to every operation."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from testgate.audit import sink
from testgate.audit.writer import AuditWriter
from testgate.config import Settings
from testgate.platform.artifact_store import ArtifactStore, open_store
from testgate.platform.events import Events
from testgate.platform.tenancy import ScopeCache
from testgate.store.changes import AccessCache
from testgate.store.db import Database

if TYPE_CHECKING:
    from testgate.access.principal import Principal
    from testgate.runner.base import Executor

# (token digest, resource it was presented to, source address): a use is recorded once a minute per address.
PrincipalKey = tuple[str, str | None, str | None]


@dataclass
class Platform:
    settings: Settings
    db: Database
    events: Events = field(default_factory=Events)
    executor: Executor | None = None

    @cached_property
    def artifact_store(self) -> ArtifactStore:
        """Where this process keeps and reads artifacts (``settings.artifacts``)."""
        return open_store(self.settings)

    @cached_property
    def principals(self) -> AccessCache[PrincipalKey, Principal]:
        """Verified bearer tokens (``access.verifier``), valid while access is unchanged."""
        return AccessCache(self.db.access, self.settings.access_cache_seconds)

    @cached_property
    def scopes(self) -> ScopeCache:
        """Organizations and environments by slug (``tenancy.resolve``), valid while access is unchanged."""
        return AccessCache(self.db.access, self.settings.access_cache_seconds)

    @cached_property
    def audit(self) -> AuditWriter:
        """Group commit for the audit events of calls that change nothing."""
        return AuditWriter(self.db, sink.from_settings(self.settings))

    def require_executor(self) -> Executor:
        if self.executor is None:
            raise RuntimeError("no executor is configured in this process")
        return self.executor
