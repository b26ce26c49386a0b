"""``testgate execution``: list, get, logs, results, wait and abort."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ran(tmp_path_factory, make_cli):
    """A data directory with one passed smoke run and one failed pytest run (the tests only read it)."""
    cli = make_cli(tmp_path_factory.mktemp("ran") / "data")
    cli.apply("smoke.yaml")
    cli.apply("pytest.yaml")
    cli("workflow", "run", "smoke", "--tag", "branch=main")
    cli("workflow", "run", "pytest", "--config", cli.python, "--config", "flaky_seed=0")
    return cli


def test_list_prints_json_newest_first_and_filters_by_status_and_tags(ran) -> None:
    everything = ran.json("execution", "list")
    failed = ran.json("execution", "list", "--status", "failed")
    tagged = ran.json("execution", "list", "--tags", "branch=main")

    assert [(e["workflow"], e["status"]) for e in everything["executions"]] == [
        ("pytest", "failed"),
        ("smoke", "passed"),
    ]
    assert [e["workflow"] for e in failed["executions"]] == ["pytest"]
    assert [e["workflow"] for e in tagged["executions"]] == ["smoke"]


def test_list_pages_with_a_cursor(ran) -> None:
    first = ran.json("execution", "list", "--limit", "1")
    second = ran.json("execution", "list", "--limit", "1", "--cursor", first["next_cursor"])

    assert [e["workflow"] for e in first["executions"] + second["executions"]] == ["pytest", "smoke"]
    assert second["next_cursor"] is None


def test_the_table_shows_whole_ids_even_when_piped(ran) -> None:
    ids = [e["id"] for e in ran.json("execution", "list")["executions"]]

    table = ran.ok("execution", "list").stdout

    assert all(i in table for i in ids)


def test_get_shows_steps_and_test_counts(ran) -> None:
    detail = ran.json("execution", "get", "pytest#1")
    table = ran.ok("execution", "get", "pytest#1").stdout

    assert detail["status"] == "failed"
    assert detail["tests"] == {"total": 3, "passed": 2, "failed": 1, "skipped": 0, "errored": 0}
    assert [s["name"] for s in detail["steps"]] == ["run pytest"]
    assert "2/3 (1 failed)" in table


def test_logs_print_the_tail_one_step_or_grep_matches_with_line_numbers(ran) -> None:
    tail = ran.ok("execution", "logs", "smoke#1", "--tail", "3").stdout.splitlines()
    step = ran.ok("execution", "logs", "smoke#1", "--step", "0").stdout
    grep = ran.ok("execution", "logs", "smoke#1", "--grep", "report written").stdout

    assert len(tail) == 3
    assert step.strip() == "hello from testgate"
    assert [line.split(": ", 1)[1] for line in grep.splitlines()] == ["report written"]


def test_logs_as_json_are_the_numbered_page(ran) -> None:
    page = ran.json("execution", "logs", "smoke#1", "--step", "0")

    assert [(line["step"], line["text"]) for line in page["lines"]] == [(0, "hello from testgate")]
    assert page["lines"][0]["seq"] >= 1


def test_logs_follow_of_a_finished_execution_prints_everything_and_returns(ran) -> None:
    followed = ran.ok("execution", "logs", "smoke#1", "--follow", "--tail", "1").stdout

    assert followed.splitlines()[-1].startswith("=== execution passed")


def test_logs_refuse_follow_with_grep(ran) -> None:
    result = ran("execution", "logs", "smoke#1", "--follow", "--grep", "x")

    assert result.exit_code == 2


def test_results_list_every_test_or_only_the_failed_ones(ran) -> None:
    every = ran.json("execution", "results", "pytest#1")
    failed = ran.ok("execution", "results", "pytest#1", "--failed")

    assert sorted(r["name"] for r in every["results"]) == [
        "test_add_puts_two_numbers_together",
        "test_divide_rounds_down",
        "test_flaky_coin_comes_up_even",
    ]
    assert "test_calc::test_divide_rounds_down" in failed.stdout
    assert "test_add_puts_two_numbers_together" not in failed.stdout
    assert "3 tests: 2 passed, 1 failed" in failed.stderr


@pytest.mark.parametrize(
    ("refs", "code"),
    [(["smoke#1"], 0), (["pytest#1"], 1), (["smoke#1", "pytest#1"], 1)],
)
def test_wait_exits_with_the_worst_outcome(ran, refs, code) -> None:
    result = ran("execution", "wait", *refs, "--timeout", "5")

    assert result.exit_code == code, result.output


def test_aborting_a_finished_execution_is_an_error(ran) -> None:
    result = ran("execution", "abort", "smoke#1")

    assert result.exit_code == 1
    assert "error:" in result.stderr


def test_an_unknown_execution_is_not_found(ran) -> None:
    result = ran("execution", "get", "smoke#99")

    assert result.exit_code == 1
    assert "not found" in result.stderr
