"""Workflow metrics over the last N finished executions: pass rate, flip rate, duration percentiles."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.platform.executions import TERMINAL
from testgate.store.executions import ExecutionRow
from testgate.store.tenancy import Environment


def percentile(sorted_values: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def flip_rate(statuses: Sequence[str]) -> float:
    """Share of consecutive pairs whose outcome changed (passed <-> not passed)."""
    if len(statuses) < 2:
        return 0.0
    outcomes = [s == "passed" for s in statuses]
    flips = sum(1 for a, b in itertools.pairwise(outcomes) if a != b)
    return flips / (len(outcomes) - 1)


@dataclass(frozen=True)
class Metrics:
    executions: int
    by_status: dict[str, int]
    pass_rate: float | None
    flip_rate: float
    p50_ms: int | None
    p90_ms: int | None
    p99_ms: int | None
    last_status: str | None
    recent: list[ExecutionRow]


async def workflow_metrics(session: AsyncSession, env: Environment, workflow: str, last: int) -> Metrics:
    """Metrics over the last ``last`` finished executions of ``workflow`` (oldest first in ``recent``)."""
    rows = list(
        await session.scalars(
            select(ExecutionRow)
            .where(
                ExecutionRow.environment_id == env.id,
                ExecutionRow.workflow_name == workflow,
                ExecutionRow.status.in_(sorted(TERMINAL)),
            )
            .order_by(ExecutionRow.id.desc())
            .limit(last)
        )
    )
    rows.reverse()
    statuses = [r.status for r in rows]
    durations = sorted(r.duration_ms for r in rows if r.duration_ms is not None)
    counted = [s for s in statuses if s != "aborted"]
    return Metrics(
        executions=len(rows),
        by_status=dict(Counter(statuses)),
        pass_rate=(counted.count("passed") / len(counted)) if counted else None,
        flip_rate=flip_rate(counted),
        p50_ms=percentile(durations, 50),
        p90_ms=percentile(durations, 90),
        p99_ms=percentile(durations, 99),
        last_status=statuses[-1] if statuses else None,
        recent=rows,
    )


def flaky_tests(history: dict[tuple[str, str], list[str]], *, min_flips: int = 1) -> list[dict[str, object]]:
    """Tests that both passed and failed within the window, most flips first."""
    flaky = []
    for (classname, name), statuses in history.items():
        relevant = [s for s in statuses if s != "skipped"]
        flips = sum(1 for a, b in itertools.pairwise(relevant) if (a == "passed") != (b == "passed"))
        if flips >= min_flips:
            flaky.append(
                {
                    "classname": classname,
                    "name": name,
                    "flips": flips,
                    "runs": len(relevant),
                    "failures": sum(1 for s in relevant if s != "passed"),
                }
            )
    return sorted(flaky, key=lambda f: (-int(str(f["flips"])), str(f["classname"]), str(f["name"])))
