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
from testgate.store.oauth import (
    AuthorizationCode,
    Consent,
    LoginAttempt,
    OAuthClient,
    RefreshToken,
    RevokedAccessToken,
    ServerSecret,
    SigningKey,
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
    "AuthorizationCode",
    "Base",
    "CaseRow",
    "Consent",
    "Environment",
    "EnvironmentGrant",
    "ExecutionRow",
    "ExecutionTagRow",
    "LogLineRow",
    "LoginAttempt",
    "Membership",
    "OAuthClient",
    "Organization",
    "RefreshToken",
    "ResultRow",
    "RevokedAccessToken",
    "ServerSecret",
    "SetupToken",
    "SigningKey",
    "StepRow",
    "User",
    "WorkflowRow",
]
