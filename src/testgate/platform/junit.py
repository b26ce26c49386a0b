"""JUnit XML reports -> per-test results, parsed safely (defusedxml) and streamed.

Reports come from many tools: a ``<testsuites>`` or ``<testsuite>`` root, suites nested to any depth,
``<failure>``/``<error>``/``<skipped>`` children, Surefire's flaky reruns. A DTD is refused outright
(CWE-611 XXE and CWE-776 entity expansion): a JUnit report never needs one, and nothing is fetched.
"""

from __future__ import annotations

import codecs
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml.common import DefusedXmlException

from testgate.errors import InvalidInput, LimitExceeded

Status = Literal["passed", "failed", "errored", "skipped"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "errored", "skipped")
MAX_MESSAGE = 4 * 1024
MAX_TRACE = 64 * 1024
MAX_NAME = 500  # the store's column width for suite, classname and name
MAX_FILE = 1024
MAX_CASES = 100_000  # per report: a bound on rows written from one file
MAX_DURATION_MS = 10**12  # ~31 years: anything above is a broken clock, not a duration
UNNAMED = "(unnamed)"
SUITE_CASE = "(suite)"  # stands for a suite-level <error>, e.g. a class that failed to load
_OUTCOMES = {"failure": "failed", "error": "errored"}
_RERUNS = ("flakyFailure", "flakyError", "rerunFailure", "rerunError")


@dataclass(frozen=True)
class ParsedResult:
    """One test case's outcome as the report states it."""

    suite: str
    classname: str
    name: str
    status: Status
    duration_ms: int
    message: str
    trace: str
    file: str


def parse_junit(data: bytes, *, source: str = "", max_bytes: int | None = None) -> list[ParsedResult]:
    """Every test case in a JUnit XML report; ``InvalidInput`` for anything that is not a safe one."""
    label = f"{source}: " if source else ""
    if max_bytes is not None and len(data) > max_bytes:
        raise LimitExceeded(f"{label}the JUnit file is {len(data)} bytes; the limit is {max_bytes}")
    try:
        return list(_cases(data, label))
    except DefusedXmlException:
        raise _refused(label) from None
    except safe_xml.ParseError as exc:
        if b"<!ENTITY" in data or b"<!DOCTYPE" in data:
            # An external DTD fragment (XXE "out of band" payload) is not even well-formed: name why.
            raise _refused(label) from None
        raise InvalidInput(f"{label}the JUnit file is not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:  # an unknown declared encoding, undecodable bytes
        raise InvalidInput(f"{label}the JUnit file cannot be read: {exc}") from None


# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# The encodings reports come in, by codecs' own names. A declaration may not pick just any codec Python
# has: some (punycode) take time growing with the square of the input, on the event loop.
ENCODINGS = frozenset(
    {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii"}
    | {"iso8859-1", "iso8859-15", "cp1252"}
)
_DECLARED = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]{0,39})["']""")
_DECLARATION_ENCODING = re.compile(r"""^(<\?xml[^>]*?\sencoding\s*=\s*["'])[^"']*(["'])""")


def report_text(data: bytes, name: str) -> str:
    """A JUnit file's bytes as text, for the paths that carry reports as text (REST uploads, the CLI, MCP).

    Read in the encoding its byte order mark or XML declaration names (UTF-8 otherwise), as an XML parser
    would, if it is one of ``ENCODINGS``; the declaration is rewritten to say UTF-8, the encoding the text
    is parsed in later. A file in ISO-8859-1 from an older tool reads as well as a UTF-8 one.
    """
    encoding = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if encoding is None:
        declared = _DECLARED.match(data)
        encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        known = codecs.lookup(encoding).name in ENCODINGS
    except LookupError:
        known = False
    if not known:
        raise InvalidInput(
            f"file {name!r}: its XML declaration names an encoding testgate does not read, {encoding!r} "
            "(send UTF-8, UTF-16, UTF-32, ISO-8859-1, ISO-8859-15 or Windows-1252)"
        )
    try:
        text = data.decode(encoding)
    except UnicodeError:
        raise InvalidInput(
            f"file {name!r} is not {encoding} text (send the report in the encoding it declares)"
        ) from None
    return _DECLARATION_ENCODING.sub(r"\1UTF-8\2", text, count=1)


def _refused(label: str) -> InvalidInput:
    # CWE-611 / CWE-776: DTDs and entities are refused before anything is resolved or expanded.
    return InvalidInput(f"{label}the JUnit file uses a DTD/entities, which are refused")


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _cases(data: bytes, label: str) -> Iterator[ParsedResult]:
    """Stream the report, dropping each test case once read so huge reports stay small in memory."""
    stack: list[Element] = []
    suites: list[str] = []
    count = 0
    for event, elem in safe_xml.iterparse(io.BytesIO(data), events=("start", "end"), forbid_dtd=True):
        tag = _local(elem.tag)
        if event == "start":
            if not stack and tag not in ("testsuites", "testsuite"):
                raise InvalidInput(
                    f"{label}not a JUnit report: the root element is <{tag}>, expected <testsuites> or <testsuite>"
                )
            if tag == "testsuite":
                suites.append(_text(elem.get("name")) or (suites[-1] if suites else ""))
            stack.append(elem)
            continue
        stack.pop()
        found: list[ParsedResult] = []
        if tag == "testcase" and len(stack) > 0:
            found.append(_case(elem, suites[-1] if suites else ""))
            stack[-1].remove(elem)
        elif tag == "testsuite":
            found.extend(_suite_errors(elem, suites.pop()))
            elem.clear()
        for result in found:
            count += 1
            if count > MAX_CASES:
                raise LimitExceeded(f"{label}the JUnit file has more than {MAX_CASES} test cases")
            yield result


def _case(elem: Element, suite: str) -> ParsedResult:
    """One ``<testcase>``: its final status is given by its own failure/error/skipped children."""
    outcome = _outcome(elem)
    status: Status = "passed"
    message = trace = ""
    if outcome is not None:
        status = _status_of(outcome)
        message, trace = _details(outcome)
    message = _with_reruns(elem, status, message)
    if status == "passed" and not trace:
        trace = _first_rerun_trace(elem)
    return ParsedResult(
        suite=cut(suite, MAX_NAME),
        classname=cut(_text(elem.get("classname")) or suite, MAX_NAME),
        name=cut(_text(elem.get("name")) or UNNAMED, MAX_NAME),
        status=status,
        duration_ms=duration_ms(elem.get("time")),
        message=cut(message, MAX_MESSAGE),
        trace=cut(trace, MAX_TRACE),
        file=cut(_text(elem.get("file")), MAX_FILE),
    )


def _outcome(elem: Element) -> Element | None:
    """The child that decides the status: a failure wins over an error, both over a skip."""
    children = {_local(child.tag): child for child in reversed(list(elem))}
    for tag in ("failure", "error", "skipped"):
        if tag in children:
            return children[tag]
    return None


def _status_of(outcome: Element) -> Status:
    tag = _local(outcome.tag)
    return "failed" if tag == "failure" else "errored" if tag == "error" else "skipped"


def _details(outcome: Element) -> tuple[str, str]:
    """(message, trace): the message attribute, else the type, else the body's first line."""
    body = _body(outcome.text)
    stack_trace = outcome.find("stackTrace")
    if not body and stack_trace is not None:
        body = _body(stack_trace.text)
    message = _text(outcome.get("message")) or _text(outcome.get("type"))
    if not message and body:
        message = body.strip().splitlines()[0]
    return message, body


def _reruns(elem: Element) -> list[Element]:
    return [child for child in elem if _local(child.tag) in _RERUNS]


def _with_reruns(elem: Element, status: Status, message: str) -> str:
    """Mention Surefire reruns: a pass after failed attempts is a flaky pass."""
    reruns = _reruns(elem)
    if not reruns:
        return message
    if status == "passed":
        first = _details(reruns[0])[0]
        note = f"flaky: passed after {len(reruns)} failed attempt(s)"
        return f"{note}; first: {first}" if first else note
    return f"{message} [also failed {len(reruns)} rerun(s)]".lstrip()


def _first_rerun_trace(elem: Element) -> str:
    reruns = _reruns(elem)
    return _details(reruns[0])[1] if reruns else ""


def _suite_errors(suite: Element, name: str) -> list[ParsedResult]:
    """A ``<failure>``/``<error>`` directly inside a suite (the suite itself broke) is one result."""
    results = []
    for child in suite:
        tag = _local(child.tag)
        if tag in _OUTCOMES:
            message, trace = _details(child)
            results.append(
                ParsedResult(
                    suite=cut(name, MAX_NAME),
                    classname=cut(name, MAX_NAME),
                    name=SUITE_CASE,
                    status=_status_of(child),
                    duration_ms=0,
                    message=cut(message, MAX_MESSAGE),
                    trace=cut(trace, MAX_TRACE),
                    file="",
                )
            )
    return results


def duration_ms(value: str | None) -> int:
    """Milliseconds from a ``time`` attribute in seconds; anything unreadable or negative is 0."""
    if not value:
        return 0
    try:
        seconds = float(value.strip().replace(",", ""))  # "2,503.1": a thousands separator
    except ValueError:
        return 0
    if math.isnan(seconds) or seconds <= 0:
        return 0
    return min(round(seconds * 1000), MAX_DURATION_MS) if math.isfinite(seconds) else MAX_DURATION_MS


def _body(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").strip("\n").rstrip()


def _text(value: str | None) -> str:
    return (value or "").strip()


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, saying how much was dropped when there is room to."""
    if len(text) <= limit:
        return text
    if limit < 80:
        return text[: max(0, limit)]
    keep = limit - 40  # room for the note, which is shorter than 40 characters
    return f"{text[:keep]}… [{len(text) - keep} more characters cut]"
