"""Prometheus instruments of the process, what feeds the HTTP ones (``count_response``), and the dispatch hook.

    testgate_http_requests_total{method,route,status}        route: the template, never the raw path;
                                                             method: a standard one, else "other"
    testgate_http_request_duration_seconds{method,route}     histogram
    testgate_tool_calls_total{tool,transport,outcome}        every dispatched operation (``count_tool_call``)
    testgate_rate_limited_total{bucket}                      429s by bucket (principal, address, sign-in)
    testgate_denied_total{reason}                            401 unauthenticated, 403 forbidden, 421 misdirected
    testgate_panics_total                                    unhandled exceptions answered by the panic guard
    testgate_executions{status}                              computed at scrape time (``testgate.http.scrape``)

The instruments live in prometheus_client's process-wide registry: one server process, one set of series.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Scope

from testgate.http import paths

REQUESTS = Counter("testgate_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "testgate_http_request_duration_seconds",
    "Time from request to the end of the response.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
TOOL_CALLS = Counter(
    "testgate_tool_calls_total",
    "Operations dispatched, by tool, transport and outcome.",
    ["tool", "transport", "outcome"],
)
RATE_LIMITED = Counter("testgate_rate_limited_total", "Requests refused by a rate limit.", ["bucket"])
DENIED = Counter("testgate_denied_total", "Requests refused: unauthenticated, forbidden or misdirected.", ["reason"])
PANICS = Counter("testgate_panics_total", "Unhandled exceptions answered by the panic guard.")
EXECUTIONS = Gauge("testgate_executions", "Executions by status (read from the database at scrape time).", ["status"])

_DENIALS = {401: "unauthenticated", 403: "forbidden", 421: "misdirected"}
# HTTP lets a request name any method (RFC 9110 §9.1); every other one is counted as "other", so that no
# client can add series to the process's registry at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MCP_TEMPLATE = "/organizations/{org}/environments/{env}/"


def count_tool_call(tool: str, transport: str, outcome: str) -> None:
    """The dispatch hook: one call of ``tool`` over ``transport`` ended ``allowed``, ``denied`` or ``error``."""
    _tool_series(tool, transport, outcome).inc()


@functools.lru_cache(maxsize=1024)
def _tool_series(tool: str, transport: str, outcome: str) -> Counter:
    """The series a tool call is counted in (bounded: the registry's tools, the transports, three outcomes)."""
    return TOOL_CALLS.labels(tool, transport, outcome)


def route_of(scope: Scope) -> str:
    """The route template that served ``scope`` (bounded label values: unmatched paths share one)."""
    path = str(scope.get("path", ""))
    endpoint = paths.mcp_endpoint(path)
    if endpoint is not None:
        return MCP_TEMPLATE + (endpoint + "/" if endpoint == "messages" else endpoint)
    if path in paths.PROBES or path == paths.METRICS:
        return path
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    return "unmatched"


def count_response(scope: Scope, status: int, seconds: float) -> None:
    """Count a response by route template and status, and time it (``testgate.http.observe`` calls this)."""
    method = scope.get("method", "")
    requests, latency, denied = _series(method if method in _METHODS else "other", route_of(scope), status)
    requests.inc()
    latency.observe(seconds)
    if denied is not None:
        denied.inc()


@functools.lru_cache(maxsize=1024)
def _series(method: str, route: str, status: int) -> tuple[Counter, Histogram, Counter | None]:
    """The series a response is counted in (looked up once: ``labels`` takes a lock and builds a key).

    The labels are bounded (route templates, known methods, statuses), so the cache holds every series in use.
    """
    denial = _DENIALS.get(status)
    return (
        REQUESTS.labels(method, route, str(status)),
        LATENCY.labels(method, route),
        DENIED.labels(denial) if denial else None,
    )
