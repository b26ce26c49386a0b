"""``dispatch``: the only way into the platform.

Order: resolve the organization and environment (isolation) -> validate the input -> authorize ->
confirm (destructive operations) -> run the handler in a transaction -> write exactly one audit event.
A mutating call's audit event commits in the handler's transaction, so if the event cannot be written
the change is rolled back and the call fails (fail closed). Denied, failed and crashed calls are audited
in a transaction of their own.

A read's event is committed before its answer goes out, too. Where the entry point can hold the answer
back itself (``Call.hold``: the hosted MCP endpoint), the event starts committing as soon as the
handler is done and the entry point waits for it at the last moment, so the commit overlaps the end of
the read's transaction and the building of the answer instead of following them (on PostgreSQL, where
the commit is a round trip: ``AuditWriter.early_commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import anyio
import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access.principal import Permission, Role
from testgate.audit import recorder, sink
from testgate.errors import (
    AuditFailure,
    ConfirmationPending,
    ConfirmationRefused,
    ConfirmationRequired,
    FieldError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TestgateError,
    Unauthenticated,
    validation_message,
)
from testgate.http import metrics
from testgate.operations.context import Call, OpContext
from testgate.operations.registry import Operation, get
from testgate.platform import nul, tenancy
from testgate.platform.context import Platform
from testgate.store.tenancy import Environment, Organization

log = structlog.get_logger("testgate.dispatch")

RACE_ATTEMPTS = 3  # a change overtaken by a concurrent insert of the same key runs again, at most this often
SQLITE_UNIQUE = ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def parse_input(op: Operation[Any, Any], raw: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Validate raw arguments into the operation's input model, naming each bad field."""
    model: type[BaseModel] = op.input
    data = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw or {})
    if bad := [FieldError(".".join(str(p) for p in loc), nul.MESSAGE) for loc in nul.locations(data)]:
        raise InvalidInput(f"invalid arguments for {op.tool}", errors=bad)
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [FieldError(".".join(str(p) for p in e["loc"]), validation_message(e)) for e in exc.errors()]
        raise InvalidInput(f"invalid arguments for {op.tool}", errors=errors) from None


async def _scope(
    platform: Platform, session: AsyncSession, op: Operation[Any, Any], call: Call
) -> tuple[Organization, Environment | None]:
    environment = call.environment if op.scope == "environment" else None
    org, env = await tenancy.resolve(session, platform.scopes, call.organization, environment)
    if org.id != call.principal.organization_id:
        # Another organization's resources answer as absent, never as forbidden.
        raise NotFound(f"organization {call.organization!r} not found")
    if op.scope == "organization":
        return org, None
    if environment is None:
        raise InvalidInput(f"{op.tool} needs an environment")
    if env is None or call.principal.permission_in(env.id) == Permission.NONE:
        raise NotFound(f"environment {environment!r} not found in organization {org.slug!r}")
    return org, env


def _authorize(op: Operation[Any, Any], call: Call, env: Environment | None) -> None:
    principal = call.principal
    held = principal.permission_in(env.id if env else None)
    if op.scope == "organization" and op.permission >= Permission.ADMIN:
        if principal.is_org_admin:
            return
        # Admin in an environment is not enough here: the operation acts on the whole organization.
        if principal.role in (Role.OWNER, Role.ADMIN):
            why = f"you are an organization {principal.role}, but this credential is limited to {principal.cap.label}"
        else:
            why = f"you are an organization {principal.role} (environment grants do not count here)"
        raise PermissionDenied(
            f"{op.tool} acts on the whole organization and needs an organization owner or admin; {why}",
            details={"required": op.permission.label, "held": held.label, "role": str(principal.role)},
        )
    if held < op.permission:
        raise PermissionDenied(
            f"{op.tool} needs {op.permission.label} permission; you have {held.label}",
            details={"required": op.permission.label, "held": held.label},
        )


class _Trace:
    """What dispatch learned along the way, for the one audit event."""

    def __init__(self) -> None:
        self.org: Organization | None = None
        self.env: Environment | None = None
        self.ctx: OpContext | None = None
        self.confirmation: str | None = None
        self.arguments: dict[str, Any] = {}
        self.scoped = False
        self.recording = False  # the call's one event is on its way already (``Call.hold``)
        # Plain ids: a rolled-back transaction expires the ORM rows, and the audit event still needs them.
        self.org_id: str | None = None
        self.env_id: str | None = None


async def dispatch(
    platform: Platform, call: Call, name: str, raw: Mapping[str, Any] | BaseModel | None = None
) -> BaseModel:
    """Run operation ``name`` for ``call`` and return its output model."""
    op = get(name)
    trace = _Trace()
    try:
        with platform.audit.call():
            result = await _run(platform, op, call, raw, trace)
    except TestgateError as exc:
        await _audit_failure(platform, op, call, trace, exc)
        raise
    except asyncio.CancelledError as exc:
        # The caller went away (a client hung up during a long wait): not a crash, still one event.
        with anyio.CancelScope(shield=True):
            await _audit_failure(platform, op, call, trace, exc)
        raise
    except BaseException as exc:
        log.exception("operation crashed", operation=op.name, request_id=call.request_id)
        await _audit_failure(platform, op, call, trace, exc)
        raise
    return result


async def _prepare(
    platform: Platform, session: AsyncSession, op: Operation[Any, Any], call: Call, raw: Any, trace: _Trace
) -> BaseModel:
    """Resolve the scope (isolation), validate the input and authorize the caller."""
    trace.org, trace.env = await _scope(platform, session, op, call)
    trace.org_id, trace.env_id = trace.org.id, trace.env.id if trace.env else None
    trace.scoped = True
    payload = parse_input(op, raw)
    trace.arguments = _mask(op, payload.model_dump(mode="json"))
    _authorize(op, call, trace.env)
    return payload


async def _run(platform: Platform, op: Operation[Any, Any], call: Call, raw: Any, trace: _Trace) -> BaseModel:
    if isinstance(raw, Mapping):
        trace.arguments = _mask(op, dict(raw))
    if not (op.destructive or op.long_running):
        return await _transaction(platform, op, call, trace, raw=raw)
    # Confirmation waits for a person and long operations wait for executions: neither may hold a
    # transaction open meanwhile.
    async with platform.db.session(write=False) as session:
        payload = await _prepare(platform, session, op, call, raw, trace)
    confirmed = await _confirm(platform, op, call, payload, trace) if op.destructive else None
    if not op.long_running:
        return await _transaction(platform, op, call, trace, payload=payload, confirmed=confirmed)
    ctx = OpContext(platform, call, _org(trace), trace.env, None, confirmed)
    trace.ctx = ctx
    result: BaseModel = await op.handler(ctx, payload)
    await _audit_success(platform, op, call, trace)
    return result


async def _transaction(
    platform: Platform,
    op: Operation[Any, Any],
    call: Call,
    trace: _Trace,
    *,
    raw: Any = None,
    payload: BaseModel | None = None,
    confirmed: Any = None,
) -> BaseModel:
    """``_attempt``, run again when a concurrent transaction inserted the same unique key first.

    On SQLite a change's transaction holds the write lock from its start, so a handler's "does it exist
    yet?" check and its INSERT cannot be overtaken. On PostgreSQL (read committed) two calls creating the
    same name both pass the check and the second INSERT violates the unique key. Run again, the handler
    sees the committed row and answers as it would have one call later: ``Conflict`` with its own message,
    or an update (``workflow.apply``). Nothing of the failed attempt was committed or audited.
    """
    for attempt in range(1, RACE_ATTEMPTS + 1):
        try:
            result, ctx = await _attempt(platform, op, call, trace, raw=raw, payload=payload, confirmed=confirmed)
            break
        except IntegrityError as exc:
            if op.read_only or attempt == RACE_ATTEMPTS or not _unique_violation(exc):
                raise
            log.info("retrying after a concurrent insert of the same key", operation=op.name, attempt=attempt)
    else:
        raise AssertionError("unreachable")
    # Outside the retries: the change is committed, and what follows it (an execution handed to a runner)
    # must never run a committed handler again.
    for hook in ctx.after_commit:
        await hook()
    return result


def _unique_violation(exc: IntegrityError) -> bool:
    """PostgreSQL's unique_violation (SQLSTATE 23505) or SQLite's UNIQUE constraint."""
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "23505" or getattr(orig, "sqlite_errorname", "") in SQLITE_UNIQUE


async def _attempt(
    platform: Platform,
    op: Operation[Any, Any],
    call: Call,
    trace: _Trace,
    *,
    raw: Any,
    payload: BaseModel | None,
    confirmed: Any,
) -> tuple[BaseModel, OpContext]:
    """Run the handler and write its audit event in one transaction; the result and the call's context.

    A read-only operation runs in a read transaction (on SQLite it does not queue for the write lock)
    and its event is group-committed right after, before the answer goes out. Where the group commit
    has no cheap path of its own (an SQLite database in memory) and nobody else is writing, the read
    takes a write transaction and commits its event with it instead (one transaction, not two).
    """
    audit = platform.audit
    write = not op.read_only or (audit.inline_cheaper and platform.db.write_idle() and audit.idle)
    async with platform.db.session(write=write) as session:
        if payload is None:
            payload = await _prepare(platform, session, op, call, raw, trace)
        ctx = OpContext(platform, call, _org(trace), trace.env, session, confirmed)
        trace.ctx = ctx
        result: BaseModel = await op.handler(ctx, payload)
        if write:
            await _audit_success(platform, op, call, trace, session)
        elif call.hold is not None and audit.early_commit:
            # Committing while the read's transaction ends (a round trip on PostgreSQL). Should ending it
            # fail now, this stays the call's one event: the read was allowed and done.
            trace.recording = True
            event = asyncio.create_task(_audit_success(platform, op, call, trace))
            if not call.hold(event):
                await event
    if not (write or trace.recording):
        await _audit_success(platform, op, call, trace)
    return result, ctx


def _org(trace: _Trace) -> Organization:
    assert trace.org is not None, "the scope is resolved before any handler runs"
    return trace.org


async def _confirm(platform: Platform, op: Operation[Any, Any], call: Call, payload: BaseModel, trace: _Trace) -> Any:
    assert op.confirm is not None
    async with platform.db.session(write=False) as session:
        question = await op.confirm(OpContext(platform, call, _org(trace), trace.env, session), payload)
    if call.confirm is None:
        trace.confirmation = "unavailable"
        raise ConfirmationRequired(
            f"{op.tool} is destructive and needs the user's confirmation, but this client cannot ask "
            f"(it did not declare elicitation support). Nothing was changed. It would: {question.message}"
        )
    try:
        outcome = await call.confirm(question.message)
    except ConfirmationPending:
        trace.confirmation = "pending"
        raise
    except ConfirmationRequired:
        trace.confirmation = "unavailable"  # the transport's confirmer had nobody to ask
        raise
    trace.confirmation = outcome
    if outcome not in ("accepted", "explicit"):
        raise ConfirmationRefused(f"the user {outcome} the confirmation; nothing was changed")
    return question.subject


async def _audit_success(
    platform: Platform, op: Operation[Any, Any], call: Call, trace: _Trace, session: AsyncSession | None = None
) -> None:
    """The call's event: in ``session`` (a change and its event commit together), else group-committed."""
    event = _event(op, call, trace, "allowed", "")
    try:
        if session is not None:
            await recorder.record(session, event, sink=sink.from_settings(platform.settings))
        else:
            await platform.audit.record(event)
    except Exception as exc:
        log.exception("audit write failed", operation=op.name, request_id=call.request_id)
        raise AuditFailure(f"the audit event for {op.tool} could not be written; nothing was changed") from exc


async def _audit_failure(
    platform: Platform, op: Operation[Any, Any], call: Call, trace: _Trace, exc: BaseException
) -> None:
    if isinstance(exc, AuditFailure) or trace.recording:
        return
    outcome: recorder.Outcome
    if isinstance(exc, PermissionDenied | Unauthenticated | ConfirmationRefused | ConfirmationRequired):
        outcome, reason = "denied", str(exc)
    elif isinstance(exc, NotFound) and not trace.scoped:
        # The organization or environment is not visible to this caller: isolation, not a missing row.
        outcome, reason = "denied", str(exc)
    elif isinstance(exc, TestgateError):
        outcome, reason = "error", str(exc)
    elif isinstance(exc, asyncio.CancelledError):
        outcome, reason = "error", "cancelled: the caller went away"
    else:
        outcome, reason = "error", f"internal error ({type(exc).__name__})"
    org_id = trace.org_id or call.principal.organization_id
    try:
        await platform.audit.record(_event(op, call, trace, outcome, reason, org_id))
    except Exception:
        log.exception("audit write failed for a failed call", operation=op.name, request_id=call.request_id)


def _mask(op: Operation[Any, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Mask the values under the operation's ``redact_arguments`` keys (a handler may refine this)."""
    for key in op.redact_arguments:
        value = arguments.get(key)
        if isinstance(value, dict):
            arguments[key] = dict.fromkeys(value, "***")
        elif value is not None:
            arguments[key] = "***"
    return arguments


def _event(
    op: Operation[Any, Any],
    call: Call,
    trace: _Trace,
    outcome: recorder.Outcome,
    reason: str,
    org_id: str | None = None,
) -> recorder.Event:
    metrics.count_tool_call(op.tool, call.transport, outcome)
    principal = call.principal
    resources = [{"type": r.type, "id": r.id, "name": r.name} for r in (trace.ctx.resources if trace.ctx else [])]
    return recorder.Event(
        organization_id=org_id or trace.org_id or principal.organization_id,
        environment_id=trace.env_id,
        action=op.name,
        outcome=outcome,
        transport=call.transport,
        actor_type=principal.kind,
        actor_id=principal.id,
        actor_name=principal.name,
        resources=resources,
        reason=reason,
        confirmation=trace.confirmation,
        request_id=call.request_id,
        source_address=call.source_address,
        user_agent=call.user_agent,
        arguments=trace.ctx.audit_arguments if trace.ctx and trace.ctx.audit_arguments is not None else trace.arguments,
    )
