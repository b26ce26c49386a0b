"""The permission matrix, generated from the registry: every operation x every kind of caller.

Callers are real API tokens authenticated the way the transports do it, so token expiry, revocation
and the creator's current role all take part. A new operation without a sample below fails the test,
so no future operation can escape the matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from testgate.access import tokens
from testgate.access.principal import Permission, Principal, Role
from testgate.errors import NotFound, PermissionDenied, TestgateError, Unauthenticated
from testgate.ids import new_id
from testgate.operations.context import Call, ConfirmOutcome
from testgate.operations.dispatch import dispatch
from testgate.operations.registry import Operation, registry
from testgate.platform import tenancy
from testgate.platform.context import Platform
from testgate.store.audit import AuditEventRow
from testgate.store.base import utcnow
from testgate.store.tenancy import EnvironmentGrant, Membership, User
from testgate.store.workflows import CaseRow

FLOW = "kind: TestWorkflow\nmetadata: {name: %s}\nspec:\n  steps: [{name: one, shell: echo one}]\n"
JUNIT = '<testsuite name="s"><testcase classname="c" name="t"/></testsuite>'

# One valid argument set per operation; "{case}" is replaced by a fresh test case id.
SAMPLES: dict[str, dict[str, Any]] = {
    "workflow.list": {},
    "workflow.get": {"name": "smoke"},
    "workflow.definition": {"name": "smoke"},
    "workflow.schema": {},
    "workflow.create": {"definition": FLOW % "fresh"},
    "workflow.update": {"name": "smoke", "definition": FLOW % "smoke"},
    "workflow.apply": {"definition": FLOW % "applied"},
    "workflow.delete": {"name": "doomed"},
    "workflow.run": {"name": "smoke"},
    "workflow.metrics": {"name": "smoke"},
    "execution.list": {},
    "execution.get": {"id": "smoke#1"},
    "execution.logs": {"id": "smoke#1"},
    "execution.wait": {"ids": ["smoke#1"], "timeout": 0.01},
    "execution.abort": {"id": "smoke#2"},
    "execution.tags": {"id": "smoke#1", "tags": {"k": "v"}},
    "execution.results": {"id": "smoke#1"},
    "artifact.list": {"id": "smoke#1"},
    "artifact.read": {"id": "smoke#1", "path": "missing.txt"},
    "results.upload": {"workflow": "external", "files": [{"name": "j.xml", "content": JUNIT}]},
    "label.list": {},
    "dashboard.url": {"kind": "workflows"},
    "testcase.list": {},
    "testcase.get": {"id": "{case}"},
    "testcase.create": {"name": "new case"},
    "testcase.update": {"id": "{case}", "description": "changed"},
    "testcase.delete": {"id": "{case}"},
    "testcase.bulk_delete": {"ids": ["{case}"]},
    "audit.list": {},
    "audit.verify": {},
    "audit.export": {"format": "jsonl"},
    "audit.purge": {},
    "token.create": {"name": "matrix", "environments": {"dev": "read"}, "expires": "P1D"},
    "token.list": {},
    "token.revoke": {"id": "nonexistent"},
    "token.rotate": {"id": "nonexistent"},
    "member.list": {},
    "member.invite": {"email": "invitee@acme.test", "environments": {"dev": "read"}},
    "member.set_role": {"user": "member-read@acme.test", "role": "member"},
    "member.grant": {"user": "member-read@acme.test", "environments": {"dev": "read"}},
    "member.remove": {"user": "nobody@acme.test"},
    "environment.list": {},
    "environment.get": {"slug": "dev"},
    "environment.create": {"slug": "fresh"},
    "environment.rename": {"slug": "dev", "name": "Development"},
}
# Every caller in the matrix is an API token, and tokens never mint credentials (only people do): no
# token, and no new account's password or invitation link, so a leaked token cannot outlive its own
# revocation. (An API token may still add a person who already has an account.)
MINTING = {"token.create", "token.rotate", "member.invite"}


@dataclass(frozen=True)
class Caller:
    name: str
    held: Permission | None  # effective permission in "dev"; None: cannot authenticate
    org_admin: bool = False


CALLERS = [
    Caller("owner", Permission.ADMIN, org_admin=True),
    Caller("admin", Permission.ADMIN, org_admin=True),
    Caller("member-read", Permission.READ),
    Caller("member-run", Permission.RUN),
    Caller("member-write", Permission.WRITE),
    Caller("member-admin", Permission.ADMIN),
    Caller("member-of-another-env", Permission.NONE),
    Caller("another-organization", Permission.NONE),
    Caller("expired-token", None),
    Caller("revoked-token", None),
    Caller("no-credentials", None),
]


class NoExecutor:
    async def start(self) -> None:
        return None

    async def submit(self, execution_id: str, secrets: Mapping[str, str]) -> None:
        return None

    async def abort(self, execution_id: str) -> bool:
        return False

    async def close(self) -> None:
        return None


async def _user(session: Any, org_id: str, email: str, role: Role, grants: dict[str, Permission]) -> str:
    user = User(email=email, name=email.split("@")[0])
    session.add(user)
    await session.flush()
    session.add(Membership(organization_id=org_id, user_id=user.id, role=role.value))
    for env_id, permission in grants.items():
        session.add(EnvironmentGrant(environment_id=env_id, user_id=user.id, permission=permission.label))
    return user.id


async def _token(session: Any, org_id: str, user_id: str, role: Role, grants: dict[str, Permission]) -> str:
    issued = await tokens.issue(
        session, organization_id=org_id, name="t", role=role, grants=grants, created_by=user_id, expires_at=None
    )
    return issued.secret


async def _secrets(platform: Platform) -> dict[str, str]:
    """A token for every caller kind, each created by a user who holds what the caller should hold."""
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        dev = await tenancy.environment_by_slug(s, org, "dev")
        staging = await tenancy.create_environment(s, org, "staging")
        other = (await tenancy.bootstrap(s, "globex", "dev", issue_setup_token=False)).organization
        out: dict[str, str] = {}
        for name, role in (("owner", Role.OWNER), ("admin", Role.ADMIN)):
            uid = await _user(s, org.id, f"{name}@acme.test", role, {})
            out[name] = await _token(s, org.id, uid, Role.ADMIN, {})
        for perm in Permission:
            if perm is Permission.NONE:
                continue
            uid = await _user(s, org.id, f"member-{perm.label}@acme.test", Role.MEMBER, {dev.id: perm})
            out[f"member-{perm.label}"] = await _token(s, org.id, uid, Role.MEMBER, {dev.id: perm})
        uid = await _user(s, org.id, "staging@acme.test", Role.MEMBER, {staging.id: Permission.ADMIN})
        out["member-of-another-env"] = await _token(s, org.id, uid, Role.MEMBER, {staging.id: Permission.ADMIN})
        uid = await _user(s, other.id, "boss@globex.test", Role.OWNER, {})
        out["another-organization"] = await _token(s, other.id, uid, Role.ADMIN, {})
        owner_id = (await s.scalar(select(User.id).where(User.email == "owner@acme.test"))) or ""
        expired = await tokens.issue(
            s,
            organization_id=org.id,
            name="old",
            role=Role.ADMIN,
            grants={},
            created_by=owner_id,
            expires_at=utcnow() + timedelta(seconds=60),
        )
        expired.row.expires_at = utcnow() - timedelta(seconds=1)
        out["expired-token"] = expired.secret
        revoked = await _token(s, org.id, owner_id, Role.ADMIN, {})
        out["revoked-token"] = revoked
        row = await s.scalar(select(tokens.ApiTokenRow).where(tokens.ApiTokenRow.secret_hash == tokens.digest(revoked)))
        assert row is not None
        row.revoked_at = utcnow()
        out["no-credentials"] = ""
    return out


async def _principal(platform: Platform, secret: str) -> Principal:
    async with platform.db.session() as session:
        return await tokens.authenticate(session, secret)


async def _seed(platform: Platform) -> None:
    """Two workflows and two executions, as the local owner."""
    from testgate.access.principal import local_owner

    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
    call = Call(local_owner(org.id), "acme", "dev", confirm=_accept)
    for name in ("smoke", "doomed"):
        await dispatch(platform, call, "workflow.create", {"definition": FLOW % name})
    await dispatch(platform, call, "workflow.run", {"name": "smoke"})
    await dispatch(platform, call, "workflow.run", {"name": "smoke"})


async def _accept(message: str) -> ConfirmOutcome:
    return "accepted"


def _expected(op: Operation[Any, Any], caller: Caller) -> bool:
    if caller.held is None or caller.name == "another-organization":
        return False
    if op.scope == "organization":
        if op.name in MINTING:
            return False
        return caller.org_admin if op.permission >= Permission.ADMIN else True
    return caller.held >= op.permission


def _arguments(op: Operation[Any, Any], case_id: str) -> dict[str, Any]:
    raw = SAMPLES[op.name]
    text = repr(raw).replace("{case}", case_id)
    return dict(eval(text))


def test_every_operation_has_a_sample_in_the_matrix_and_no_sample_is_stale() -> None:
    missing = sorted(set(registry()) - set(SAMPLES))
    assert not missing, f"add these operations to the permission matrix: {missing}"
    stale = sorted(set(SAMPLES) - set(registry()))
    assert not stale, f"these samples name no operation: {stale}"


@pytest.mark.parametrize("op_name", sorted(registry()))
async def test_each_caller_is_allowed_exactly_what_its_permission_grants(platform: Platform, op_name: str) -> None:
    op = registry()[op_name]
    platform.executor = NoExecutor()
    secrets = await _secrets(platform)
    await _seed(platform)
    for caller in CALLERS:
        case_id = await _live_case(platform)
        try:
            principal = await _principal(platform, secrets[caller.name])
        except Unauthenticated:
            assert caller.held is None, f"{caller.name} could not authenticate"
            continue
        assert caller.held is not None, f"{caller.name} authenticated but must not"
        call = Call(principal, "acme", "dev" if op.scope == "environment" else None, confirm=_accept)
        outcome = await _attempt(platform, call, op, _arguments(op, case_id))
        assert outcome == ("allowed" if _expected(op, caller) else "denied"), f"{op.tool} as {caller.name}"


async def _live_case(platform: Platform) -> str:
    """A test case that exists now (destructive samples consume the previous one)."""
    async with platform.db.session() as s:
        org = await tenancy.organization_by_slug(s, "acme")
        env = await tenancy.environment_by_slug(s, org, "dev")
        existing = await s.scalar(select(CaseRow).where(CaseRow.environment_id == env.id).limit(1))
        if existing is None:
            existing = CaseRow(environment_id=env.id, name=f"case-{new_id()}")
            s.add(existing)
            await s.flush()
        return existing.id


async def _attempt(platform: Platform, call: Call, op: Operation[Any, Any], args: dict[str, Any]) -> str:
    """'denied' when authorization refused the call, 'allowed' when it got past it (whatever followed)."""
    try:
        await dispatch(platform, call, op.name, args)
    except (PermissionDenied, NotFound):
        async with platform.db.session() as s:
            event = await s.scalar(select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(1))
        assert event is not None
        assert event.action == op.name
        return "denied" if event.outcome == "denied" else "allowed"
    except TestgateError:
        return "allowed"
    return "allowed"
