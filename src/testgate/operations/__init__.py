"""The operations spine: importing this package declares every operation in the registry."""

from testgate.operations import executions, results, testcases, workflows
from testgate.operations.dispatch import dispatch
from testgate.operations.registry import Operation, get, registry

__all__ = ["Operation", "dispatch", "executions", "get", "registry", "results", "testcases", "workflows"]
