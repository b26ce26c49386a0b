"""A workflow's recent runs as an inline SVG bar chart: duration as height, outcome as colour.

Only geometry is computed here; the template draws it with presentation attributes and CSS classes, so
the page needs neither a script nor an inline style.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from testgate.operations.models import ExecutionSummary
from testgate.web.pages import duration, when

WIDTH = 720
PLOT = 140  # height of the duration bars
TOP = 18  # room for the scale label
STRIP = 8  # the pass/fail strip under the bars
GAP = 6


@dataclass(frozen=True)
class Bar:
    """One run: its duration bar, its outcome tick, and where it links."""

    x: float
    y: float
    width: float
    height: float
    status: str
    label: str
    href: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float
    strip_y: float
    scale: str
    bars: list[Bar]
    oldest: str
    newest: str


def history(runs: Sequence[ExecutionSummary], href: Callable[[ExecutionSummary], str]) -> Chart | None:
    """The chart of ``runs`` (newest first, as listed), drawn oldest to newest; None without runs."""
    if not runs:
        return None
    ordered = list(reversed(runs))
    longest = max((r.duration_ms or 0 for r in ordered), default=0) or 1
    slot = WIDTH / max(len(ordered), 10)
    bars = []
    for index, run in enumerate(ordered):
        height = max(2.0, PLOT * (run.duration_ms or 0) / longest) if run.duration_ms else 2.0
        tests = f", {run.tests.passed}/{run.tests.total} tests passed" if run.tests.total else ""
        label = (
            f"{run.workflow} #{run.number}: {run.status}, {duration(run.duration_ms)}{tests}, {when(run.created_at)}"
        )
        bars.append(
            Bar(
                x=round(index * slot + slot * 0.15, 1),
                y=round(TOP + PLOT - height, 1),
                width=round(slot * 0.7, 1),
                height=round(height, 1),
                status=run.status,
                label=label,
                href=href(run),
            )
        )
    return Chart(
        width=WIDTH,
        height=TOP + PLOT + GAP + STRIP + 2,
        baseline=TOP + PLOT,
        strip_y=TOP + PLOT + GAP,
        scale=duration(longest),
        bars=bars,
        oldest=f"#{ordered[0].number}",
        newest=f"#{ordered[-1].number}",
    )


def pass_rates(runs: Sequence[ExecutionSummary]) -> dict[str, float]:
    """Passed over finished runs (aborted excluded) for each workflow among ``runs``."""
    counted: dict[str, list[int]] = {}
    for run in runs:
        if run.status in ("passed", "failed", "timed_out"):
            passed, finished = counted.setdefault(run.workflow, [0, 0])
            counted[run.workflow] = [passed + (run.status == "passed"), finished + 1]
    return {name: passed / finished for name, (passed, finished) in counted.items()}
