"""One execution, start to finish: workspace, content, steps in order, artifacts and results.

Whatever happens, the execution ends in a final status with a reason and its workspace is removed.
Sensitive values exist only in this object's memory; the log and the reason are masked.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from testgate.audit import redaction
from testgate.errors import InvalidInput, RunnerError
from testgate.platform import spec as specs
from testgate.platform.context import Platform
from testgate.platform.logs import SYSTEM_STEP, LogWriter
from testgate.runner import state, steps, workspace
from testgate.runner.content import materialize
from testgate.runner.process import Outcome, run_process
from testgate.runner.state import StepResult
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow

log = structlog.get_logger("testgate.runner")

NOT_PASSED = frozenset({"failed", "timed_out", "aborted"})


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str = ""


def step_result(name: str, outcome: Outcome, timeout: float) -> StepResult:
    """The step's status and reason from how its process ended."""
    code = outcome.exit_code
    if outcome.kind == "timed_out":
        return StepResult("timed_out", None, f"step {name!r} timed out after {timeout:g}s")
    if outcome.kind == "aborted":
        return StepResult("aborted", None, f"step {name!r} was aborted")
    if code == 0:
        return StepResult("passed", 0)
    if code is not None and code < 0:
        return StepResult("failed", code, f"step {name!r} was killed by {_signal_name(-code)}")
    return StepResult("failed", code, f"step {name!r} exited with code {code}")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Job:
    """Runs one claimed execution; ``request_abort`` stops it (its current process group included)."""

    def __init__(self, platform: Platform, execution_id: str, secrets: Mapping[str, str], runner_id: str) -> None:
        self.platform = platform
        self.execution_id = execution_id
        self.runner_id = runner_id
        self.started = False
        self._secrets = dict(secrets)
        self._abort = asyncio.Event()
        self._abort_reason = ""
        self._log = LogWriter(platform, execution_id, masks=list(self._secrets.values()))
        self._workspace = workspace.workspace_path(platform.settings.workspaces_dir, execution_id)

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def request_abort(self, reason: str) -> None:
        if not self._abort.is_set():
            self._abort_reason = reason
            self._abort.set()

    async def run(self) -> bool:
        """Run it if it is still queued (False if not); it ends in passed, failed, timed_out or aborted."""
        self.started = True
        row = await state.load(self.platform, self.execution_id)
        started = utcnow()
        if row is None or not await state.mark_running(self.platform, self.execution_id, self.runner_id, started):
            return False
        verdict = Verdict("failed", "the runner stopped while this execution was running")
        # Structured logs and audit records mask these values too while the execution runs.
        for value in self._secrets.values():
            redaction.register_secret(value)
        try:
            verdict = await self._guarded(row)
        finally:
            await self._conclude(verdict, started)
            for value in self._secrets.values():
                redaction.forget_secret(value)
        return True

    async def _guarded(self, row: ExecutionRow) -> Verdict:
        try:
            return await self._execute(row)
        except Exception as exc:  # a store or runner bug must not leave the execution running
            log.exception("execution failed in the runner", execution_id=self.execution_id)
            reason = f"internal runner error: {type(exc).__name__}"
            await state.close_steps(self.platform, self.execution_id, running="failed", reason=reason)
            return Verdict("failed", reason)

    async def _conclude(self, verdict: Verdict, started: datetime) -> None:
        reason = self._log.mask(verdict.reason)
        try:
            await self._note(f"=== execution {verdict.status}" + (f": {reason} ===" if reason else " ==="))
            await self._log.close()
        finally:
            await state.finish(
                self.platform, self.execution_id, verdict.status, reason, started, runner_id=self.runner_id
            )
            await workspace.remove(self._workspace)

    async def _execute(self, row: ExecutionRow) -> Verdict:
        try:
            spec = specs.validate(row.spec).spec
            values = steps.config_values(spec, row.config, self._secrets)
        except (InvalidInput, RunnerError) as exc:
            return await self._refuse(f"the execution cannot run: {exc}")
        await workspace.create(self.platform.settings.workspaces_dir, self.execution_id)
        try:
            await materialize(
                spec.content,
                self._workspace,
                run=self._run_tool,
                git_timeout=self.platform.settings.runner.git_timeout,
                note=self._note,
            )
        except RunnerError as exc:
            if self.aborted:
                await self._close_steps("execution aborted")
                return Verdict("aborted", self._abort_reason)
            return await self._refuse(f"content: {exc.message}")
        verdict = await self._steps(spec, values)
        if not self.aborted:
            await self._collect(spec)
        if verdict.status == "passed":
            verdict = await self._tests_verdict(verdict)
        return verdict

    async def _tests_verdict(self, verdict: Verdict) -> Verdict:
        """Failed tests fail the execution even when every step exited 0 (e.g. ``pytest || true``)."""
        row = await state.load(self.platform, self.execution_id)
        failing = (row.tests_failed + row.tests_errored) if row is not None else 0
        if failing:
            return Verdict("failed", f"{failing} test(s) failed or errored in the JUnit results")
        return verdict

    async def _refuse(self, reason: str) -> Verdict:
        await self._note(reason)
        await self._close_steps(reason)
        return Verdict("failed", reason)

    async def _close_steps(self, reason: str) -> None:
        """Skip every step that has not run."""
        await state.close_steps(self.platform, self.execution_id, running="aborted", reason=reason)

    async def _note(self, text: str) -> None:
        await self._log.write(SYSTEM_STEP, text)

    async def _steps(self, spec: specs.Spec, values: Mapping[str, Any]) -> Verdict:
        results: list[StepResult] = []
        for index, step in enumerate(spec.steps):
            if self.aborted:
                await self._close_steps("execution aborted")
                break
            failed = any(r.status in NOT_PASSED for r in results)
            if steps.should_run(step.condition, failed):
                results.append(await self._step(index, step, spec, values))
            else:
                reason = f"condition {step.condition!r} not met"
                await state.steps_skipped(self.platform, self.execution_id, [index], reason)
                results.append(StepResult("skipped", None, reason))
        return self._verdict(results)

    def _verdict(self, results: Sequence[StepResult]) -> Verdict:
        if self.aborted:
            return Verdict("aborted", self._abort_reason)
        for status in ("timed_out", "failed"):
            first = next((r for r in results if r.status == status), None)
            if first is not None:
                return Verdict(status, first.reason)
        return Verdict("passed")

    async def _step(self, index: int, step: specs.Step, spec: specs.Spec, values: Mapping[str, Any]) -> StepResult:
        await self._note(f"=== step {index}: {step.name} ===")
        started = utcnow()
        await state.step_started(self.platform, self.execution_id, index, started)
        timeout = step.timeout or self.platform.settings.runner.default_step_timeout

        async def sink(text: str, dropped: int) -> None:
            await self._log.write(index, text, dropped_bytes=dropped)

        try:
            outcome = await run_process(
                steps.command(step, values),
                cwd=steps.working_dir(self._workspace, step, values),
                env=steps.environment(spec, step, values),
                timeout=timeout,
                abort=self._abort,
                sink=sink,
                line_bytes=self._log.line_budget,
                grace=self.platform.settings.runner.kill_grace_seconds,
            )
            result = step_result(step.name, outcome, timeout)
        except RunnerError as exc:
            result = StepResult("failed", None, self._log.mask(f"step {step.name!r}: {exc.message}"))
        await self._note(f"--- {result.reason or f'step {step.name!r} passed'}")
        await state.step_finished(self.platform, self.execution_id, index, result, started)
        return result

    async def _run_tool(self, argv: list[str], cwd: Path, timeout: float) -> Outcome:
        """A content command (git), its output logged as system lines."""

        async def sink(text: str, dropped: int) -> None:
            await self._log.write(SYSTEM_STEP, text, dropped_bytes=dropped)

        return await run_process(
            argv,
            cwd=cwd,
            env=steps.git_environment(),
            timeout=timeout,
            abort=self._abort,
            sink=sink,
            line_bytes=self._log.line_budget,
            grace=self.platform.settings.runner.kill_grace_seconds,
        )

    async def _collect(self, spec: specs.Spec) -> None:
        """Hand the workspace to the artifact and result services (also after failed steps)."""
        if spec.artifacts is not None and spec.artifacts.paths:
            await self._guard("artifacts", self._artifacts(spec.artifacts.paths))
        if spec.results is not None and spec.results.junit:
            await self._guard("results", self._results(spec.results.junit))

    async def _artifacts(self, patterns: Sequence[str]) -> None:
        # Imported here: a broken collector must cost its own output, not the runner.
        from testgate.platform import artifacts

        report = await artifacts.collect(self.platform, self.execution_id, self._workspace, patterns)
        await self._note(f"artifacts: kept {len(report.rows)} file(s) matching {', '.join(patterns)}")
        for problem in report.problems:
            await self._note(f"artifacts: {problem}")

    async def _results(self, patterns: Sequence[str]) -> None:
        from testgate.platform import results

        report = await results.ingest_workspace(self.platform, self.execution_id, self._workspace, patterns)
        await self._note(f"results: {report.tests} test(s) from {len(report.files)} JUnit file(s)")
        for problem in report.problems:
            await self._note(f"results: {problem}")

    async def _guard(self, service: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # another service's failure must not keep the execution from finishing
            log.exception(f"{service} collection failed", execution_id=self.execution_id)
            await self._note(f"{service}: collection failed: {type(exc).__name__}: {exc}")
