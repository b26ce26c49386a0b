"""The instruction-count benchmark: its rounds are the breakdown's shapes, and each dump counts for its round."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.mcp_instructions import NAMES, _rounds, counted
from bench.mcp_throughput import _prepare


async def test_every_shape_is_measured_once_per_round_in_turns(tmp_path: Path) -> None:
    data_dir = tmp_path / "testgate"
    token, execution = await _prepare(data_dir)
    measured = await _rounds(data_dir, token, execution, calls=1, rounds=2)
    assert measured == [*NAMES, *NAMES]
    # Calls several at a time: the same turns, each call answered (``call`` raises otherwise).
    assert await _rounds(data_dir, token, execution, calls=4, rounds=1, concurrency=4) == list(NAMES)


def test_each_shape_counts_its_smallest_round_per_call(tmp_path: Path) -> None:
    totals = [6_000, 9_000, 8_000, 7_000, 6_500, 5_000, 9_200, 8_100, 7_000, 6_400]
    dumps = []
    for number, total in enumerate(totals, start=1):
        dump = tmp_path / f"callgrind.out.{number}"
        dump.write_text(f"version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: {total}\ntotals: {total}\n")
        dumps.append(dump)
    counts = counted(dumps, [*NAMES, *NAMES], calls=10)
    assert counts == {"store": 500, "whole": 900, "no front door": 800, "no audit event": 700, "neither": 640}
    with pytest.raises(RuntimeError, match="10 callgrind dumps for 5 measured rounds"):
        counted(dumps, list(NAMES), calls=10)
