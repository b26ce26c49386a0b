"""``testgate workflow run``: the run happens in the CLI process; exit codes follow its outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import IO

SLOW = """\
kind: TestWorkflow
metadata: {name: slow}
spec:
  steps:
    - name: wait
      shell: echo started waiting; sleep 60
"""


def test_watching_the_smoke_example_streams_every_step_and_exits_0(cli) -> None:
    cli.apply("smoke.yaml")

    result = cli("workflow", "run", "smoke", "--watch", "--config", "greeting=bonjour")

    assert result.exit_code == 0, result.output
    out = result.stdout
    for step in ("greet", "inspect the workspace", "write a report", "clean up"):
        assert f": {step} ===" in out  # the step boundary
    assert "bonjour from testgate" in out
    assert "clean-up runs whether or not" in out
    assert "smoke#1 passed" in out


def test_watching_the_pytest_example_exits_1_and_names_the_failing_test(cli) -> None:
    cli.apply("pytest.yaml")

    result = cli("workflow", "run", "pytest", "--watch", "--config", cli.python, "--config", "flaky_seed=2")

    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "collected 3 items" in out  # pytest's own output, live
    assert "tests: 3 total, 2 passed, 1 failed" in out
    assert "test_calc::test_divide_rounds_down — AssertionError: divide(7, 2) should round down" in out
    assert "test_flaky_coin_comes_up_even" not in out.split("failed tests:")[1]


def test_an_odd_flaky_seed_makes_the_flaky_test_fail_too(cli) -> None:
    cli.apply("pytest.yaml")

    result = cli("workflow", "run", "pytest", "--config", cli.python, "--config", "flaky_seed=3")

    assert result.exit_code == 1, result.output
    assert "tests: 3 total, 1 passed, 2 failed" in result.stdout
    assert "test_calc::test_flaky_coin_comes_up_even — AssertionError: the coin came up odd (3)" in result.stdout


def test_a_run_without_watch_waits_for_the_outcome_without_the_log(cli) -> None:
    cli.apply("smoke.yaml")

    result = cli("workflow", "run", "smoke", "--tag", "branch=main")

    assert result.exit_code == 0, result.output
    assert "from testgate" not in result.stdout
    assert "smoke#1 passed" in result.stdout
    assert cli.json("execution", "get", "smoke#1")["tags"] == {"branch": "main"}


def test_a_sensitive_value_never_reaches_the_output_or_the_database_file(cli) -> None:
    secret = "sk-live-7f3a9c1e5b"
    cli.apply("secret-param.yaml")

    result = cli("workflow", "run", "secret-param", "--watch", "--config", f"api_key={secret}")

    assert result.exit_code == 0, result.output
    assert "calling the API with key ***" in result.stdout
    assert secret not in result.output
    assert cli.json("execution", "get", "secret-param#1")["config"] == {"api_key": "***"}
    stored = b"".join(p.read_bytes() for p in cli.data_dir.glob("testgate.db*"))
    assert b"calling the API" in stored  # the log is there,
    assert secret.encode() not in stored  # the secret is not


def test_an_unknown_config_parameter_is_an_error_and_nothing_runs(cli) -> None:
    cli.apply("smoke.yaml")

    result = cli("workflow", "run", "smoke", "--config", "colour=blue")

    assert result.exit_code == 1
    assert "unknown config parameter(s): colour" in result.stderr
    assert cli.json("execution", "list")["executions"] == []


def test_a_config_value_without_equals_is_a_usage_error(cli) -> None:
    cli.apply("smoke.yaml")

    result = cli("workflow", "run", "smoke", "--config", "greeting")

    assert result.exit_code == 2
    assert "'greeting' is not key=value" in result.stderr


def _read_until(stream: IO[str], text: str) -> str:
    """Lines of ``stream`` up to the first containing ``text`` (or to its end)."""
    seen = ""
    for line in stream:
        seen += line
        if text in line:
            break
    return seen


# `testgate` as a terminal starts it in the foreground: Ctrl-C raises KeyboardInterrupt. A test run started
# in the background by a shell (CI scripts) ignores SIGINT, and a child inherits an ignored signal.
AS_IN_A_TERMINAL = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('testgate', run_name='__main__', alter_sys=True)"
)


def test_ctrl_c_aborts_the_running_execution_and_exits_130(cli) -> None:
    # The process boundary is the subject: a real SIGINT to a real `testgate` process.
    cli("workflow", "apply", "-f", "-", input=SLOW)
    env = {**os.environ, "TESTGATE_DATA_DIR": str(cli.data_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", AS_IN_A_TERMINAL, "workflow", "run", "slow", "--watch"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        guard = threading.Timer(30, proc.kill)  # bounds the test if the line never comes
        guard.start()
        try:
            assert proc.stdout is not None
            assert "started waiting" in _read_until(proc.stdout, "started waiting")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            guard.cancel()

    assert proc.returncode == 130, err
    assert "slow#1 is aborted" in err
    assert cli.json("execution", "get", "slow#1")["status"] == "aborted"
