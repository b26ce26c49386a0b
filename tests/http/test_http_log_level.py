"""The access log: a line per request with its id and status (``http.observe``), and no cost below its level."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
from prometheus_client import REGISTRY
from starlette.types import Message, Receive, Scope, Send

from testgate import logconfig
from testgate.http import accesslog
from testgate.http.observe import Observe


@contextmanager
def spied(level: str) -> Iterator[list[dict[str, Any]]]:
    """``logconfig.configure`` at ``level``, with a spy after the level filter and the context; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    reached: list[dict[str, Any]] = []

    def spy(_logger: Any, method: str, event: Any) -> Any:
        reached.append(dict(event))
        return event

    logconfig.configure("json", level)
    processors = structlog.get_config()["processors"]
    assert processors[:2] == [structlog.stdlib.filter_by_level, structlog.contextvars.merge_contextvars]
    structlog.configure(processors=[*processors[:2], spy, *processors[2:]], cache_logger_on_first_use=False)
    # The access log's module logger keeps the configuration of its first use (``logconfig`` caches
    # loggers): earlier tests may have used it, so it is made again under this one.
    cached, accesslog.log = accesslog.log, structlog.get_logger("testgate.http")
    try:
        yield reached
    finally:
        accesslog.log = cached
        structlog.configure(**saved)
        root.handlers[:], root.level = handlers, root_level


@pytest.fixture
def configured() -> Iterator[list[dict[str, Any]]]:
    with spied("WARNING") as reached:
        yield reached


def test_a_call_below_the_level_is_dropped_before_the_processors(configured: list[dict[str, Any]]) -> None:
    log = structlog.get_logger("testgate.http")
    log.info("request", method="POST", path="/mcp", status=200)
    log.debug("probe")
    log.warning("kept")
    assert [e["event"] for e in configured] == ["kept"]


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    structlog.get_logger("testgate.test").warning("inside", path=scope["path"])
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _crash(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def _through(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "client": ("192.0.2.7", 5)}
    await Observe(app)(scope, receive, send)
    return sent


def _served(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "testgate_http_requests_total", {"method": "POST", "route": route, "status": status}
    )
    return value or 0.0


async def test_each_request_gets_one_line_with_its_id_its_status_and_its_time_and_is_counted() -> None:
    route = "/organizations/{org}/environments/{env}/mcp"
    before = _served(route, "201")
    with spied("INFO") as reached:
        sent = await _through(_answer, "/organizations/o/environments/e/mcp", [(b"x-request-id", b"given-id.1")])
        fresh = await _through(_answer, "/organizations/o/environments/e/mcp", [(b"x-request-id", b"bad id!")])

    assert dict(sent[0]["headers"])[b"x-request-id"] == b"given-id.1"
    lines = [e for e in reached if e["event"] == "request"]
    assert [(e["request_id"], e["status"], e["method"], e["client"]) for e in lines[:1]] == [
        ("given-id.1", 201, "POST", "192.0.2.7")
    ]
    assert lines[0]["duration_ms"] >= 0
    inside = [e for e in reached if e["event"] == "inside"]
    assert [e["request_id"] for e in inside] == ["given-id.1", lines[1]["request_id"]]  # bound for the app too
    generated = dict(fresh[0]["headers"])[b"x-request-id"].decode()
    assert generated == lines[1]["request_id"] != "bad id!"  # an unsafe id is replaced, not echoed
    assert len(generated) == 32
    assert _served(route, "201") == before + 2


async def test_a_request_whose_app_crashed_is_logged_without_a_status_and_counted_as_500() -> None:
    before = _served("unmatched", "500")
    with spied("INFO") as reached, pytest.raises(RuntimeError):
        await _through(_crash, "/nowhere", [])

    [line] = [e for e in reached if e["event"] == "request"]
    assert line["status"] is None
    assert _served("unmatched", "500") == before + 1
    assert "request_id" not in structlog.contextvars.get_contextvars()  # unbound once the request ended


async def test_at_warning_the_access_log_builds_no_line_but_the_request_is_still_counted(
    configured: list[dict[str, Any]],
) -> None:
    before = _served("unmatched", "201")
    await _through(_answer, "/elsewhere", [])
    assert [e["event"] for e in configured] == ["inside"]
    assert _served("unmatched", "201") == before + 1
