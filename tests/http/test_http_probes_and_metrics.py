"""Liveness and readiness probes, and Prometheus metrics: admin-only on the main port, or on their own listener."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.serving import free_port

from testgate.access.principal import Permission
from testgate.http import metrics
from testgate.http.settings import HttpSettings
from testgate.platform import tenancy
from testgate.store.executions import ExecutionRow

WORKFLOWS = "/api/v1/organizations/acme/environments/dev/workflows"


async def test_liveness_and_readiness_answer_when_the_database_does(live_server: Any) -> None:
    async with live_server() as live:
        alive = await live.http.get("/healthz")
        ready = await live.http.get("/readyz")

    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": {"database": "ok"}})
    assert ready.headers["cache-control"] == "no-store"


async def test_readiness_is_503_when_the_database_is_gone_while_liveness_holds(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> Any:
        raise ConnectionRefusedError("database down")

    async with live_server() as live:
        monkeypatch.setattr(live.platform.db, "session", unreachable)
        ready = await live.http.get("/readyz")
        alive = await live.http.get("/healthz")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}
    assert alive.status_code == 200


async def test_metrics_on_the_main_port_need_an_admin_token_of_the_default_organization(live_server: Any) -> None:
    async with live_server() as live:
        async with live.platform.db.session() as session:
            await tenancy.bootstrap(session, "other", "dev")
            dev = await tenancy.environment_by_slug(session, await tenancy.organization_by_slug(session, "acme"), "dev")
            for number, status in enumerate(["passed", "failed", "failed"], start=1):
                session.add(ExecutionRow(environment_id=dev.id, workflow_name="smoke", number=number, status=status))
        admin, member, foreign = await live.token(), await live.token(Permission.ADMIN), await live.token(org="other")
        await live.http.get(WORKFLOWS, headers={"Authorization": f"Bearer {admin}"})
        metrics.count_tool_call("list_workflows", "mcp-http", "allowed")
        anonymous = await live.http.get("/metrics")
        by_member = await live.http.get("/metrics", headers={"Authorization": f"Bearer {member}"})
        by_foreign_admin = await live.http.get("/metrics", headers={"Authorization": f"Bearer {foreign}"})
        scraped = await live.http.get("/metrics", headers={"Authorization": f"Bearer {admin}"})

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert (by_member.status_code, by_foreign_admin.status_code) == (403, 403)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    template = "/api/v1/organizations/{org}/environments/{env}/workflows"
    assert f'testgate_http_requests_total{{method="GET",route="{template}",status="200"}}' in text
    assert 'testgate_http_request_duration_seconds_bucket{le="0.005",method="GET",route="' in text
    assert 'testgate_tool_calls_total{outcome="allowed",tool="list_workflows",transport="mcp-http"}' in text
    assert 'testgate_denied_total{reason="unauthenticated"}' in text
    assert 'testgate_executions{status="passed"} 1.0' in text
    assert 'testgate_executions{status="failed"} 2.0' in text
    assert "/organizations/acme/" not in text  # raw paths never become labels


async def test_a_separate_metrics_listener_serves_them_and_the_main_port_does_not(live_server: Any) -> None:
    listen = f"127.0.0.1:{free_port()}"
    async with live_server(http=HttpSettings(metrics_listen=listen)) as live:
        main = await live.http.get("/metrics")
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://{listen}/metrics")

    assert main.status_code == 404
    assert scraped.status_code == 200
    assert "testgate_rate_limited_total" in scraped.text


async def test_made_up_methods_share_one_series_so_a_client_cannot_grow_the_registry(live_server: Any) -> None:
    # RFC 9110 §9.1: a request may name any method token; label values stay bounded all the same.
    listen = f"127.0.0.1:{free_port()}"
    async with live_server(http=HttpSettings(metrics_listen=listen)) as live:
        for n in range(5):
            answer = await live.http.request(f"MADEUP{n}", WORKFLOWS)
            assert answer.status_code in (401, 405)
        await live.http.get(WORKFLOWS)
        async with httpx.AsyncClient() as scraper:
            scraped = (await scraper.get(f"http://{listen}/metrics")).text

    assert "MADEUP" not in scraped
    assert 'method="other"' in scraped
    assert 'method="GET"' in scraped


def test_responses_are_exposed_as_prometheus_clients_own_counter_and_histogram_would_expose_them() -> None:
    """The per-response series are counted in plain dicts (``metrics._Responses``); scraped, they read the
    same as a prometheus_client ``Counter`` and ``Histogram`` fed the same responses (bar ``_created``)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from testgate.http.metrics import LATENCY_BUCKETS, _Responses

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counted = _Responses()
    ours.register(counted)
    requests = Counter(
        "testgate_http_requests_total", "HTTP requests answered.", ["method", "route", "status"], registry=theirs
    )
    latency = Histogram(
        "testgate_http_request_duration_seconds",
        "Time from request to the end of the response.",
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=theirs,
    )
    responses = [
        ("GET", "/healthz", 200, 0.001),
        ("GET", "/healthz", 200, 0.005),  # exactly on a bound: counted in it ("le")
        ("POST", "/organizations/{org}/environments/{env}/mcp", 200, 0.3),
        ("POST", "/organizations/{org}/environments/{env}/mcp", 504, 61.5),  # past every bound
        ("other", "unmatched", 404, 0.0125),
    ]
    for method, route, status, seconds in responses:
        counted.count(method, route, status, seconds)
        requests.labels(method, route, str(status)).inc()
        latency.labels(method, route).observe(seconds)

    def lines(registry: CollectorRegistry) -> list[str]:
        return sorted(line for line in generate_latest(registry).decode().splitlines() if "_created" not in line)

    assert lines(ours) == lines(theirs)
    assert 'testgate_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/healthz"} 2.0' in lines(ours)
