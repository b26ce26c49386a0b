"""Forwarded client addresses: believed only from trusted proxies, then used by audit, rate limits and logs."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from testgate.http.forwarded import Forwarded, parse_forwarded
from testgate.http.settings import HttpSettings
from testgate.store.audit import AuditEventRow

WORKFLOWS = "/api/v1/organizations/acme/environments/dev/workflows"


async def _sources(live: Any) -> list[str | None]:
    async with live.platform.db.session() as session:
        rows = await session.scalars(
            select(AuditEventRow).where(AuditEventRow.action == "workflow.list").order_by(AuditEventRow.seq)
        )
        return [row.source_address for row in rows]


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [(["127.0.0.1/32"], "198.51.100.7"), (["10.0.0.0/8"], "127.0.0.1")],
    ids=["from-a-trusted-proxy", "from-anyone-else"],
)
async def test_the_audit_source_is_the_forwarded_client_only_behind_a_trusted_proxy(
    live_server: Any, trusted: list[str], expected: str
) -> None:
    async with live_server(http=HttpSettings(trusted_proxies=trusted)) as live:
        token = await live.token()
        # The leftmost entry is what a client may forge; the proxy appended the address it saw.
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.99, 198.51.100.7"}
        response = await live.http.get(WORKFLOWS, headers=headers)
        sources = await _sources(live)

    assert response.status_code == 200
    assert sources == [expected]


async def test_rate_limits_key_on_the_forwarded_client(live_server: Any) -> None:
    limits = HttpSettings(trusted_proxies=["127.0.0.1"], rate_limit_address="1/hour")
    async with live_server(http=limits) as live:
        first = await live.http.get(WORKFLOWS, headers={"X-Forwarded-For": "198.51.100.1"})
        again = await live.http.get(WORKFLOWS, headers={"X-Forwarded-For": "198.51.100.1"})
        other = await live.http.get(WORKFLOWS, headers={"X-Forwarded-For": "198.51.100.2"})

    assert (first.status_code, again.status_code, other.status_code) == (401, 429, 401)


def test_the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() -> None:
    layer = Forwarded(lambda *a: None, trusted=["10.0.0.0/8", "2001:db8::/32"], header="x-forwarded-for")  # type: ignore[arg-type, return-value]

    assert layer.client_of(["1.1.1.1", "203.0.113.5", "10.0.0.2", "10.0.0.3"]) == "203.0.113.5"
    assert layer.client_of(["10.0.0.2"]) is None  # only proxies: keep the peer
    assert layer.client_of(["unknown", "10.0.0.2"]) is None  # an unparseable hop ends the trust
    assert layer.client_of(["[2001:db9::1]:443"]) == "2001:db9::1"


def test_rfc_7239_forwarded_values_are_parsed() -> None:
    hops, proto = parse_forwarded(
        'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711";proto=https'
    )

    assert hops == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"']
    assert proto == "https"
