"""Confirming destructive tools through MCP elicitation, in both protocol eras.

``dispatch`` computes the question (after authorizing the caller) and awaits ``Call.confirm(message)``.

- 2025-11-25 (sessions): the confirmer sends ``elicitation/create`` mid-call and waits for the answer,
  bounded by a timeout; no answer in time refuses the operation.
- 2026-07-28 (stateless): the server cannot call the client, so the first round ends with an
  ``InputRequiredResult`` carrying the question and a one-shot nonce in ``requestState``; the client
  retries with the answer. The SDK's ``RequestStateBoundary`` seals the state (expiry, tool, arguments,
  principal), and the ledger here makes each nonce redeemable once, for the same caller, tool,
  arguments and question - so a replayed retry asks again instead of deleting twice. The ledger is in
  Redis when replicas share one, so the retry may reach any replica.
- A client that did not declare form elicitation gets no confirmer: ``dispatch`` refuses with a message
  saying nothing changed.

Declined and cancelled answers make ``dispatch`` raise ``ConfirmationRefused``: the tool result is an
error (isError) that says nothing was changed, so an agent never mistakes a refusal for success.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.elicitation import AcceptedElicitation, elicit_with_validation, render_elicitation_schema
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp_types import (
    ClientCapabilities,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    InputResponses,
    RequestId,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from testgate import errors
from testgate.errors import ConfirmationRefused
from testgate.operations.context import Confirmer, ConfirmOutcome

INPUT_REQUIRED_VERSION = "2026-07-28"
ANSWER_KEY = "confirm"
DEFAULT_TIMEOUT = 300.0


class ConfirmForm(BaseModel):
    """The form a person answers: a single explicit yes."""

    confirm: bool = Field(default=False, title="Confirm", description="Check to go ahead; nothing happens otherwise.")


@dataclass
class ConfirmationPending(errors.ConfirmationPending):
    """The question was put to the client in an ``InputRequiredResult``; the call ends this round."""

    result: InputRequiredResult | None = None


class MemoryLedger:
    """One-shot confirmation nonces, each bound to a digest of caller, tool, arguments and question.

    In-process: a 2026 retry must reach the process that asked (one process, or sticky routing); with
    ``TESTGATE_REDIS_URL`` set, replicas share a ``RedisLedger`` instead.
    """

    def __init__(self, ttl: float = 600.0, capacity: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._capacity, self._clock = ttl, capacity, clock
        self._open: dict[str, tuple[str, float]] = {}

    async def issue(self, binding: str) -> str:
        """A fresh nonce for ``binding``, valid once until the TTL passes."""
        now = self._clock()
        self._open = {n: e for n, e in self._open.items() if e[1] > now}
        while len(self._open) >= self._capacity:
            del self._open[next(iter(self._open))]
        nonce = secrets.token_urlsafe(24)
        self._open[nonce] = (binding, now + self._ttl)
        return nonce

    async def redeem(self, nonce: str, binding: str) -> bool:
        """True exactly once for a live nonce issued for ``binding``; any attempt burns the nonce."""
        entry = self._open.pop(nonce, None)
        if entry is None:
            return False
        bound, expires = entry
        return expires > self._clock() and secrets.compare_digest(bound, binding)

    async def close(self) -> None:
        self._open.clear()


class RedisLedger:
    """The same one-shot nonces in Redis, so a retry may reach any replica: ``GETDEL`` takes a nonce
    exactly once across all of them. Keys hold a hash of the nonce, never the nonce itself.

    If Redis cannot be reached the confirmation is refused (nothing is changed): a destructive tool is
    never run on an answer that could not be checked.
    """

    def __init__(self, url: str, ttl: float = 600.0, timeout: float = 2.0, prefix: str = "testgate") -> None:
        from redis.asyncio import Redis

        self._prefix = f"{prefix}:mcp-confirm:"  # TESTGATE_HTTP__RATE_LIMIT_PREFIX: one per deployment
        self._ttl = max(1, math.ceil(ttl))
        self._redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def _key(self, nonce: str) -> str:
        return self._prefix + hashlib.sha256(nonce.encode()).hexdigest()

    async def issue(self, binding: str) -> str:
        nonce = secrets.token_urlsafe(24)
        try:
            await self._redis.set(self._key(nonce), binding, ex=self._ttl)
        except RedisError as exc:
            raise ConfirmationRefused(
                f"the confirmation could not be recorded (shared state unavailable: {type(exc).__name__}); "
                "nothing was changed"
            ) from None
        return nonce

    async def redeem(self, nonce: str, binding: str) -> bool:
        try:
            bound = await self._redis.getdel(self._key(nonce))
        except RedisError as exc:
            raise ConfirmationRefused(
                f"the confirmation could not be checked (shared state unavailable: {type(exc).__name__}); "
                "nothing was changed"
            ) from None
        return isinstance(bound, bytes) and secrets.compare_digest(bound, binding.encode())

    async def close(self) -> None:
        await self._redis.aclose()


Ledger = MemoryLedger | RedisLedger


def ledger_for(redis_url: str | None, ttl: float, prefix: str = "testgate") -> Ledger:
    """Redis when replicas share one (``TESTGATE_REDIS_URL``; keys under ``prefix``), else this process's memory."""
    return RedisLedger(redis_url, ttl, prefix=prefix) if redis_url else MemoryLedger(ttl)


def can_elicit(capabilities: ClientCapabilities | None) -> bool:
    """The client declared form elicitation (a bare ``elicitation: {}`` predates modes and means form)."""
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def uses_input_required(protocol_version: str | None) -> bool:
    """True when the negotiated protocol asks through ``InputRequiredResult`` (2026-07-28 and later)."""
    return protocol_version is not None and is_version_at_least(protocol_version, INPUT_REQUIRED_VERSION)


def outcome_of(answer: object) -> ConfirmOutcome:
    """Map an elicitation answer to dispatch's outcome: only an accepted, checked form is a yes."""
    action = getattr(answer, "action", "cancel")
    if action == "accept":
        form = answer.data if isinstance(answer, AcceptedElicitation) else _form(getattr(answer, "content", None))
        return "accepted" if isinstance(form, ConfirmForm) and form.confirm else "declined"
    return "declined" if action == "decline" else "cancelled"


def _form(content: object) -> ConfirmForm | None:
    if not isinstance(content, Mapping):
        return None
    try:
        return ConfirmForm.model_validate(content)
    except ValueError:
        return None


def elicitation_confirmer(session: ServerSession, request_id: RequestId | None, timeout: float) -> Confirmer:
    """2025-11-25: ask with ``elicitation/create`` on the session; silence past ``timeout`` refuses."""

    async def confirm(message: str) -> ConfirmOutcome:
        try:
            with anyio.fail_after(timeout):
                answer = await elicit_with_validation(session, message, ConfirmForm, related_request_id=request_id)
        except TimeoutError:
            raise ConfirmationRefused(
                f"no answer to the confirmation within {timeout:g} s; nothing was changed"
            ) from None
        except ValueError:
            return "declined"  # accepted with content that does not fit the form: not a yes
        except MCPError as exc:
            reason = f"the client could not ask for confirmation ({exc.error.message}); nothing was changed"
            raise ConfirmationRefused(reason) from None
        return outcome_of(answer)

    return confirm


def binding_of(caller_key: str, tool: str, arguments: Mapping[str, Any], message: str) -> str:
    """The digest a nonce is bound to: who, which tool, exactly which arguments, and the question."""
    body = json.dumps([caller_key, tool, arguments, message], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def input_required_confirmer(
    ledger: Ledger,
    caller_key: str,
    tool: str,
    arguments: Mapping[str, Any],
    responses: InputResponses | None,
    state: str | None,
) -> Confirmer:
    """2026-07-28: answer from this retry's ``inputResponses`` if its nonce redeems; otherwise ask."""

    async def confirm(message: str) -> ConfirmOutcome:
        binding = binding_of(caller_key, tool, arguments, message)
        answer = (responses or {}).get(ANSWER_KEY)
        nonce = _nonce(state)
        if isinstance(answer, ElicitResult) and nonce is not None and await ledger.redeem(nonce, binding):
            return outcome_of(answer)
        question = _question(message, await ledger.issue(binding))
        raise ConfirmationPending(f"awaiting the user's confirmation: {message}", result=question)

    return confirm


def _nonce(state: str | None) -> str | None:
    try:
        value = json.loads(state) if state else None
    except ValueError:
        return None
    nonce = value.get("nonce") if isinstance(value, dict) else None
    return nonce if isinstance(nonce, str) else None


def _question(message: str, nonce: str) -> InputRequiredResult:
    schema = render_elicitation_schema(ConfirmForm)
    request = ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema))
    return InputRequiredResult(input_requests={ANSWER_KEY: request}, request_state=json.dumps({"nonce": nonce}))


def confirmer_for(
    ctx: ServerRequestContext[Any, Any],
    *,
    ledger: Ledger,
    caller_key: str,
    tool: str,
    arguments: Mapping[str, Any],
    responses: InputResponses | None,
    state: str | None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Confirmer | None:
    """The confirmer this request's client can answer, or None when nobody can be asked."""
    session = ctx.session
    if not can_elicit(session.client_capabilities):
        return None
    if uses_input_required(ctx.protocol_version):
        return input_required_confirmer(ledger, caller_key, tool, arguments, responses, state)
    if not session.can_send_request:
        return None
    return elicitation_confirmer(session, ctx.request_id, timeout)
