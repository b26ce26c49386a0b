"""Log calls below the configured level cost no processing: the access log's line per request at WARNING."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from testgate import logconfig


@pytest.fixture
def configured() -> Iterator[list[str]]:
    """``logconfig.configure`` at WARNING, with a spy right after its first processor; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    reached: list[str] = []

    def spy(_logger: Any, method: str, event: Any) -> Any:
        reached.append(str(event["event"]))
        return event

    logconfig.configure("json", "WARNING")
    processors = structlog.get_config()["processors"]
    structlog.configure(processors=[processors[0], spy, *processors[1:]], cache_logger_on_first_use=False)
    try:
        yield reached
    finally:
        structlog.configure(**saved)
        root.handlers[:], root.level = handlers, level


def test_a_call_below_the_level_is_dropped_before_the_processors(configured: list[str]) -> None:
    log = structlog.get_logger("testgate.http")
    log.info("request", method="POST", path="/mcp", status=200)
    log.debug("probe")
    log.warning("kept")
    assert configured == ["kept"]
