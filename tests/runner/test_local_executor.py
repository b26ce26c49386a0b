"""The local executor end to end, with real subprocesses: statuses, conditions, environment, bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text

from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

if TYPE_CHECKING:
    from conftest import Harness


async def test_passing_steps_run_in_order_and_the_execution_passes(
    runner: Harness, platform: Platform, executor: LocalExecutor
) -> None:
    done = await runner.run([{"name": "first", "shell": "echo one"}, {"name": "second", "shell": "echo two"}])

    assert done.row.status == "passed"
    assert done.row.reason == ""
    assert done.statuses == ["passed", "passed"]
    assert [s.exit_code for s in done.steps] == [0, 0]
    assert done.step_texts(0) == ["one"]
    assert done.step_texts(1) == ["two"]
    assert "=== step 0: first ===" in done.texts
    assert [line.seq for line in done.lines] == list(range(1, len(done.lines) + 1))
    assert done.row.log_lines == len(done.lines)
    assert done.row.runner_id == executor.runner_id
    assert done.row.started_at is not None
    assert done.row.finished_at is not None
    assert done.row.duration_ms is not None
    assert all(s.duration_ms is not None for s in done.steps)
    assert not (platform.settings.workspaces_dir / done.row.id).exists()
    assert executor.held == []


async def test_a_failing_step_skips_later_passed_steps_and_runs_failed_and_always_ones(runner: Harness) -> None:
    done = await runner.run(
        [
            {"name": "ok", "shell": "true"},
            {"name": "pytest", "shell": "exit 3"},
            {"name": "deploy", "shell": "echo deploy"},
            {"name": "report", "shell": "echo report", "condition": "failed"},
            {"name": "cleanup", "shell": "echo cleanup", "condition": "always"},
        ]
    )

    assert done.row.status == "failed"
    assert done.row.reason == "step 'pytest' exited with code 3"
    assert done.statuses == ["passed", "failed", "skipped", "passed", "passed"]
    assert done.steps[1].exit_code == 3
    assert done.step_texts(2) == []
    assert done.step_texts(3) == ["report"]
    assert done.step_texts(4) == ["cleanup"]


async def test_failed_condition_steps_are_skipped_when_everything_passed(runner: Harness) -> None:
    done = await runner.run(
        [{"name": "ok", "shell": "true"}, {"name": "on-failure", "shell": "echo no", "condition": "failed"}]
    )

    assert done.row.status == "passed"
    assert done.statuses == ["passed", "skipped"]
    assert done.steps[1].reason == "condition 'failed' not met"


async def test_a_shell_script_fails_at_its_first_failing_command(runner: Harness) -> None:
    done = await runner.run([{"name": "script", "shell": "echo before\nfalse\necho after"}])

    assert done.row.status == "failed"
    assert done.step_texts(0) == ["before"]


async def test_run_steps_exec_their_command_without_a_shell(runner: Harness) -> None:
    done = await runner.run(
        [{"name": "exec", "run": {"command": ["printf", "%s|%s\\n"], "args": ["$HOME", "{{ config.word }}"]}}],
        values={"word": "hello"},
        config={"word": {"type": "string"}},
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["$HOME|hello"]


async def test_a_missing_command_fails_the_step_with_a_clear_reason(runner: Harness) -> None:
    done = await runner.run([{"name": "ghost", "run": {"command": ["no-such-command-testgate"]}}])

    assert done.row.status == "failed"
    assert "step 'ghost': cannot start 'no-such-command-testgate'" in done.row.reason


async def test_the_environment_merges_server_spec_and_step_values_without_server_settings(
    runner: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_ONLY", "server")
    monkeypatch.setenv("TESTGATE_DATABASE_URL", "postgresql://admin:hunter2@db/prod")
    done = await runner.run(
        [
            {
                "name": "env",
                "shell": 'echo "$SERVER_ONLY $FROM_SPEC $OVERRIDDEN $RENDERED ${TESTGATE_DATABASE_URL:-unset}"',
                "env": {"OVERRIDDEN": "step", "RENDERED": "v={{ config.level }}"},
            }
        ],
        values={"level": 3},
        env={"FROM_SPEC": "spec", "OVERRIDDEN": "spec"},
        config={"level": {"type": "integer"}},
    )

    assert done.step_texts(0) == ["server spec step v=3 unset"]


@pytest.mark.parametrize(
    ("steps", "config"),
    [
        # A symlink made by an earlier step must not lead the working directory out.
        ([{"name": "link", "shell": "ln -s / escape"}, {"name": "use", "shell": "pwd", "workingDir": "escape"}], {}),
        # A rendered value must not add '..' that the spec check never saw.
        ([{"name": "use", "shell": "pwd", "workingDir": "{{ config.dir }}"}], {"dir": "../.."}),
    ],
    ids=["symlink", "rendered"],
)
async def test_a_working_dir_outside_the_workspace_is_refused(
    runner: Harness, steps: list[dict[str, Any]], config: dict[str, str]
) -> None:
    spec = {"config": {"dir": {"type": "string"}}} if config else {}
    done = await runner.run(steps, values=config, **spec)

    assert done.row.status == "failed"
    assert "is outside the workspace" in done.row.reason
    assert done.steps[-1].status == "failed"
    assert done.step_texts(len(steps) - 1) == []


async def test_inline_files_are_written_with_their_mode_and_a_working_dir_inside_is_used(runner: Harness) -> None:
    done = await runner.run(
        [
            {"name": "exec", "run": {"command": ["./tool.sh"]}, "workingDir": "sub"},
            {"name": "mode", "shell": "stat -c %a sub/tool.sh && cat notes/readme.txt"},
        ],
        content={
            "files": [
                {"path": "sub/tool.sh", "content": "#!/bin/sh\necho tool ran in $(basename $PWD)\n", "mode": 0o750},
                {"path": "notes/readme.txt", "content": "hello"},
            ]
        },
    )

    assert done.row.status == "passed", done.texts
    assert done.step_texts(0) == ["tool ran in sub"]
    assert done.step_texts(1) == ["750", "hello"]


async def test_an_oversized_line_is_cut_with_a_visible_marker(runner: Harness, platform: Platform) -> None:
    runner.tune(max_log_line_bytes=256)
    done = await runner.run([{"name": "big", "shell": "head -c 100000 /dev/zero | tr '\\0' x; echo; printf tail"}])

    assert done.row.status == "passed"
    big, last = done.step_texts(0)
    assert big == "x" * 256 + " … [line truncated: 100000 bytes]"
    assert last == "tail"  # a final line without a newline is kept


async def test_the_log_stops_at_its_total_bound_with_one_final_line(runner: Harness, platform: Platform) -> None:
    runner.tune(max_log_bytes=4096)
    done = await runner.run([{"name": "chatty", "shell": "seq 1 5000"}, {"name": "after", "shell": "echo after"}])

    assert done.row.status == "passed"
    assert done.row.log_truncated is True
    assert done.texts[-1] == "[log truncated: limit 4096 bytes reached]"
    assert "after" not in done.texts
    assert done.row.log_bytes <= 4096 + len(done.texts[-1])
    assert done.row.log_lines == len(done.lines)


async def test_sensitive_values_never_reach_the_store(runner: Harness, platform: Platform) -> None:
    secret = "s3cr3t-Value-42"
    done = await runner.run(
        [
            {"name": "echo", "shell": "echo token={{ config.token }}; echo env=$TOKEN; echo $TOKEN >&2"},
            {"name": "exec", "run": {"command": ["{{ config.token }}"]}, "condition": "always"},
        ],
        values={"token": secret},
        env={"TOKEN": "{{ config.token }}"},
        config={"token": {"type": "string", "sensitive": True}},
    )

    assert done.step_texts(0) == ["token=***", "env=***", "***"]
    assert done.row.reason == "step 'exec': cannot start '***': No such file or directory"
    async with platform.db.session() as session:
        for table in ("executions", "log_lines", "execution_steps", "workflows"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            assert rows or table == "workflows"
            assert secret not in repr(rows), table


async def test_failed_junit_tests_fail_the_execution_even_when_every_step_exits_zero(runner: Harness) -> None:
    report = (
        '<testsuite name="s"><testcase classname="c" name="ok"/>'
        '<testcase classname="c" name="bad"><failure message="boom">trace</failure></testcase></testsuite>'
    )
    finished = await runner.run(
        [{"name": "tests", "shell": f"mkdir -p reports && printf '%s' '{report}' > reports/j.xml"}],
        results={"junit": ["reports/*.xml"]},
    )
    assert finished.statuses == ["passed"]
    assert (finished.row.status, finished.row.tests_failed, finished.row.tests_passed) == ("failed", 1, 1)
    assert finished.row.reason == "1 test(s) failed or errored in the JUnit results"
