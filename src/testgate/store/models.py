"""Every model, imported in one place so metadata is complete (Alembic, tests)."""

from testgate.store.audit import AuditEventRow
from testgate.store.base import Base
from testgate.store.executions import (
    ArtifactRow,
    ExecutionRow,
    ExecutionTagRow,
    LogLineRow,
    ResultRow,
    StepRow,
)
from testgate.store.tenancy import (
    Environment,
    EnvironmentGrant,
    Membership,
    Organization,
    SetupToken,
    User,
)
from testgate.store.tokens import ApiTokenRow
from testgate.store.workflows import CaseRow, WorkflowRow

__all__ = [
    "ApiTokenRow",
    "ArtifactRow",
    "AuditEventRow",
    "Base",
    "CaseRow",
    "Environment",
    "EnvironmentGrant",
    "ExecutionRow",
    "ExecutionTagRow",
    "LogLineRow",
    "Membership",
    "Organization",
    "ResultRow",
    "SetupToken",
    "StepRow",
    "User",
    "WorkflowRow",
]
