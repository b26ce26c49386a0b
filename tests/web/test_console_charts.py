"""The run chart's geometry, the list's pass rates, and reading form fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from testgate.errors import InvalidInput
from testgate.operations.models import ExecutionSummary, TestCounts
from testgate.web import charts, forms
from testgate.web.pages import duration, percent, sentence, when


def _run(number: int, status: str, ms: int | None, workflow: str = "smoke") -> ExecutionSummary:
    return ExecutionSummary(
        id=f"id{number}",
        workflow=workflow,
        number=number,
        status=status,
        source="run",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        duration_ms=ms,
        tests=TestCounts(total=2, passed=1 if status == "failed" else 2),
    )


def test_the_chart_draws_runs_oldest_first_with_the_longest_run_full_height() -> None:
    runs = [_run(3, "failed", 500), _run(2, "passed", 2000), _run(1, "running", None)]  # newest first
    chart = charts.history(runs, lambda run: f"/x/{run.id}")
    assert chart is not None
    assert [b.status for b in chart.bars] == ["running", "passed", "failed"]
    assert chart.bars[1].height == charts.PLOT
    assert chart.bars[1].y == charts.TOP
    assert chart.bars[2].height == charts.PLOT / 4
    assert chart.bars[0].height == 2.0  # no duration yet: a stub, still clickable
    assert chart.bars[0].x < chart.bars[1].x < chart.bars[2].x
    assert chart.bars[2].href == "/x/id3"
    assert "smoke #3: failed, 500 ms, 1/2 tests passed" in chart.bars[2].label
    assert (chart.scale, chart.oldest, chart.newest) == ("2.0 s", "#1", "#3")


def test_a_workflow_without_runs_has_no_chart() -> None:
    assert charts.history([], lambda run: "") is None


def test_pass_rates_count_finished_runs_and_leave_out_aborted_ones() -> None:
    runs = [
        _run(1, "passed", 1),
        _run(2, "failed", 1),
        _run(3, "aborted", 1),
        _run(4, "running", None),
        _run(5, "timed_out", 1),
        _run(6, "passed", 1, workflow="other"),
    ]
    assert charts.pass_rates(runs) == {"smoke": pytest.approx(1 / 3), "other": 1.0}


def test_key_value_fields_read_commas_and_new_lines_and_name_a_bad_pair() -> None:
    assert forms.pairs("team=qa, tier = smoke\nbranch=main", "tags") == {
        "team": "qa",
        "tier": "smoke",
        "branch": "main",
    }
    assert forms.pairs("  ", "tags") == {}
    with pytest.raises(InvalidInput) as refused:
        forms.pairs("team=qa, nightly", "tags")
    assert refused.value.errors[0].path == "tags"


def test_a_datetime_local_field_is_read_as_utc() -> None:
    assert forms.utc_time("2026-03-01T10:30", "since") == "2026-03-01T10:30:00+00:00"
    assert forms.utc_time("2026-03-01T10:30+02:00", "since") == "2026-03-01T10:30:00+02:00"
    assert forms.utc_time("", "since") is None
    with pytest.raises(InvalidInput):
        forms.utc_time("yesterday", "since")


def test_empty_config_fields_mean_the_default() -> None:
    fields = {"csrf": "x", "config.greeting": "hi", "config.count": "", "tags": ""}
    assert forms.prefixed(fields, "config.") == {"greeting": "hi"}


def test_times_durations_and_rates_read_the_same_everywhere() -> None:
    assert when(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05 UTC"
    assert when(None) == "—"
    assert [duration(v) for v in (None, 340, 1500, 125_000)] == ["—", "340 ms", "1.5 s", "2 min 5 s"]
    assert [percent(v) for v in (None, 0.0, 0.666)] == ["—", "0%", "67%"]


def test_messages_become_sentences_but_identifiers_keep_their_spelling() -> None:
    assert sentence("the email address is wrong") == "The email address is wrong."
    assert sentence("list_audit_events needs admin permission") == "list_audit_events needs admin permission."
    assert sentence("Done!") == "Done!"
