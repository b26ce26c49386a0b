"""An example suite for testgate: one test passes, one fails, and one is flaky.

The flaky test flips a coin: with ``FLAKY_SEED`` set (the workflow's ``flaky_seed`` config value) it
passes for an even seed and fails for an odd one; unset or empty, the coin is the clock's parity in
microseconds, so it passes on some runs and fails on others, which is what flaky-test analytics
(``get_workflow_metrics``) look for.
"""

import os
import time

from calc import add, divide


def test_add_puts_two_numbers_together():
    assert add(2, 3) == 5


def test_divide_rounds_down():
    # Fails on purpose: divide() returns 3.5, not 3, so the run shows a failed test with its message.
    assert divide(7, 2) == 3, "divide(7, 2) should round down"


def _coin() -> int:
    seed = os.environ.get("FLAKY_SEED", "").strip()
    return int(seed) if seed else time.time_ns() // 1000


def test_flaky_coin_comes_up_even():
    coin = _coin()
    assert coin % 2 == 0, f"the coin came up odd ({coin}); set FLAKY_SEED to an even number to pass"
