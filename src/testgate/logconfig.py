"""structlog configuration: JSON lines in production, readable console on a TTY, always on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

from testgate.audit.redaction import redact_event


def writes_json(fmt: Literal["auto", "json", "console"], stream: TextIO | None = None) -> bool:
    """Whether logs go out as JSON lines: asked for, or ``auto`` on a stream that is no terminal."""
    return fmt == "json" or (fmt == "auto" and not (stream or sys.stderr).isatty())


def configure(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "INFO", *, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to stderr (stdout belongs to stdio MCP and CLI output), or ``stream``.

    Python's warnings (a library's ``SecurityWarning``) go through logging too, so JSON output stays one
    object per line.
    """
    stream = stream or sys.stderr
    use_json = writes_json(fmt, stream)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # A call below the level is dropped before any processor runs (not after the timestamp and the
        # context were added): the access log line of every request costs nothing at WARNING.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # The console renderer formats exceptions itself; JSON needs them as a string field.
            *([structlog.processors.format_exc_info] if use_json else []),
            redact_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
