"""The registry: every action a caller can take, declared once.

An operation's name is its audit action (``workflow.run``); its tool name is what MCP clients see
(``run_workflow``). REST routes, CLI commands, console pages and MCP tools all reach handlers only
through ``dispatch``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from testgate.access.principal import Permission
from testgate.errors import NotFound

if TYPE_CHECKING:
    from testgate.operations.context import OpContext

I = TypeVar("I", bound=BaseModel)  # noqa: E741
O = TypeVar("O", bound=BaseModel)  # noqa: E741

Scope = Literal["environment", "organization"]


@dataclass(frozen=True)
class Confirmation:
    """What a destructive operation asks before it runs. ``subject`` is exactly what will be acted on."""

    message: str
    subject: Any = None


@dataclass(frozen=True)
class Operation(Generic[I, O]):
    name: str
    tool: str
    title: str
    description: str
    permission: Permission
    input: type[I]
    output: type[O]
    handler: Callable[[OpContext, I], Awaitable[O]]
    scope: Scope = "environment"
    destructive: bool = False
    read_only: bool = False
    idempotent: bool = False
    long_running: bool = False
    confirm: Callable[[OpContext, I], Awaitable[Confirmation]] | None = None
    redact_arguments: tuple[str, ...] = ()
    # Offered to MCP clients as a tool. Not so for operations that hand out a secret (a new token's), which
    # must never land in a model's context: dispatch refuses them on MCP transports as well.
    agent_tool: bool = True


_REGISTRY: dict[str, Operation[Any, Any]] = {}
# The modules that declare operations; loaded on first use of the registry.
MODULES = (
    "testgate.operations.workflows",
    "testgate.operations.executions",
    "testgate.operations.results",
    "testgate.operations.testcases",
    "testgate.operations.audit",
    "testgate.operations.access",
    "testgate.operations.members",
    "testgate.operations.environments",
)


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return  # import_module of a module already imported still costs a microsecond or more, each
    for module in MODULES:
        importlib.import_module(module)
    _loaded = True


def register(op: Operation[I, O]) -> Operation[I, O]:
    if op.name in _REGISTRY or any(o.tool == op.tool for o in _REGISTRY.values()):
        raise ValueError(f"operation {op.name} ({op.tool}) is declared twice")
    if op.destructive and op.confirm is None:
        raise ValueError(f"destructive operation {op.name} must say what it will destroy")
    _REGISTRY[op.name] = op
    return op


def operation(
    name: str,
    *,
    tool: str,
    title: str,
    permission: Permission,
    input: type[I],
    output: type[O],
    scope: Scope = "environment",
    destructive: bool = False,
    read_only: bool = False,
    idempotent: bool = False,
    long_running: bool = False,
    confirm: Callable[[OpContext, I], Awaitable[Confirmation]] | None = None,
    redact_arguments: tuple[str, ...] = (),
    agent_tool: bool = True,
) -> Callable[[Callable[[OpContext, I], Awaitable[O]]], Operation[I, O]]:
    """Declare a handler as an operation; its docstring is the description agents read."""

    def wrap(handler: Callable[[OpContext, I], Awaitable[O]]) -> Operation[I, O]:
        description = " ".join((handler.__doc__ or "").split())
        return register(
            Operation(
                name=name,
                tool=tool,
                title=title,
                description=description,
                permission=permission,
                input=input,
                output=output,
                handler=handler,
                scope=scope,
                destructive=destructive,
                read_only=read_only,
                idempotent=idempotent,
                long_running=long_running,
                confirm=confirm,
                redact_arguments=redact_arguments,
                agent_tool=agent_tool,
            )
        )

    return wrap


def registry() -> dict[str, Operation[Any, Any]]:
    """Every declared operation by name."""
    _load()
    return dict(_REGISTRY)


def agent_tools() -> list[Operation[Any, Any]]:
    """The operations MCP clients see as tools, in declaration order."""
    return [op for op in registry().values() if op.agent_tool]


def get(name: str) -> Operation[Any, Any]:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise NotFound(f"no operation named {name!r}") from None
