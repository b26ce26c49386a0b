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

import bisect
import functools
import itertools
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.types import Scope

from testgate.http import paths

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BOUNDS = tuple(repr(float(bound)) for bound in LATENCY_BUCKETS)  # "le" as prometheus_client spells it


class _Responses:
    """``testgate_http_requests_total`` and ``testgate_http_request_duration_seconds``, kept in plain dicts.

    Every response is counted here, on the event loop: a ``Counter`` and a ``Histogram`` of
    prometheus_client took three locks and a Python loop over the buckets per response. The registry
    turns the dicts into the same two metric families when it is scraped (``collect``).
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        # per (method, route): a count per bucket (the last one past every bound), then the sum of seconds
        self.latency: dict[tuple[str, str], list[float]] = {}

    def count(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        self.requests[key] = self.requests.get(key, 0) + 1
        timing = self.latency.get((method, route))
        if timing is None:
            timing = self.latency[(method, route)] = [0] * (len(LATENCY_BUCKETS) + 2)
        timing[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds ("le")
        timing[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "testgate_http_requests", "HTTP requests answered.", labels=["method", "route", "status"]
        )
        for series, value in dict(self.requests).items():
            requests.add_metric(list(series), value)
        yield requests
        latency = HistogramMetricFamily(
            "testgate_http_request_duration_seconds",
            "Time from request to the end of the response.",
            labels=["method", "route"],
        )
        for pair, timing in dict(self.latency).items():
            cumulative = list(itertools.accumulate(timing[:-1]))
            buckets = [(bound, cumulative[i]) for i, bound in enumerate(_BOUNDS)]
            latency.add_metric(list(pair), [*buckets, ("+Inf", cumulative[-1])], timing[-1])
        yield latency


RESPONSES = _Responses()
REGISTRY.register(RESPONSES)
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
    RESPONSES.count(method if method in _METHODS else "other", route_of(scope), status, seconds)
    denial = _DENIALS.get(status)
    if denial is not None:
        _denied(denial).inc()


@functools.lru_cache(maxsize=len(_DENIALS))
def _denied(reason: str) -> Counter:
    return DENIED.labels(reason)
