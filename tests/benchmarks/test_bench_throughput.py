"""The network benchmark's report: each round's ratio pairs a testgate round with the store's next to it."""

from __future__ import annotations

from collections.abc import Iterator

from bench.mcp_throughput import ERAS, SERVERS, Round, measure, table


class ScriptedBench:
    """A stand-in for the servers under wrk: each round answers the next rate of its server's script."""

    def __init__(self, rates: dict[str, list[float]]) -> None:
        self.servers = dict.fromkeys(SERVERS)
        self._rates: dict[str, Iterator[float]] = {name: iter(values) for name, values in rates.items()}

    def open_sessions(self, name: str, count: int) -> None:
        return None

    def recover(self, name: str, count: int) -> float | None:
        return 0.0

    def round(self, name: str, era: str, connections: int, seconds: float) -> Round:
        rate = next(self._rates[name])
        return Round(p50_ms=1.0, p99_ms=2.0, requests=int(rate), failed=0, sample="", good=int(rate), seconds=1.0)


def test_each_rounds_ratio_pairs_testgate_with_the_store_round_beside_it() -> None:
    # Per era: one warm-up round each, then two measured rounds in which the machine slows down by half.
    script = {"bare": [500, 500, 250] * 2, "store": [100, 100, 50] * 2, "testgate": [90, 90, 40] * 2}
    results, _, spreads = measure(ScriptedBench(script), [1], seconds=2.0, warmup=1.0, rounds=2)
    assert spreads == {(era, 1): [0.9, 0.8] for era in ERAS}
    rows = table(results, {(era, 1, "testgate"): 0.0 for era in ERAS}, spreads, [1]).splitlines()
    # Calls over the whole time: 130 against 150, 0.87x; round by round between 0.80x and 0.90x.
    assert "| 0.87x | 0.80-0.90x |" in rows[2]
