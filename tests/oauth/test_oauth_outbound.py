"""The outbound HTTP client: proxies from the environment, NO_PROXY, and requests pinned to a vetted address."""

from __future__ import annotations

from testgate.http.outbound import Outbound, pinned_url


def test_proxies_are_read_once_from_the_conventional_variables() -> None:
    outbound = Outbound.from_environ(
        {"HTTPS_PROXY": "http://proxy:3128", "http_proxy": "http://lower:3128", "NO_PROXY": "internal.example,.corp"}
    )
    assert outbound.proxy_for("https://agent.example/c.json") == "http://proxy:3128"
    assert outbound.proxy_for("http://agent.example/c.json") == "http://lower:3128"
    assert outbound.proxy_for("https://internal.example/c.json") is None
    assert outbound.proxy_for("https://a.internal.example/c.json") is None
    assert outbound.proxy_for("https://x.corp/c.json") is None
    assert outbound.proxy_for("https://notinternal.example/c.json") == "http://proxy:3128"


def test_all_proxy_is_the_fallback_and_no_proxy_accepts_cidr_and_star() -> None:
    outbound = Outbound.from_environ({"ALL_PROXY": "http://all:1", "NO_PROXY": "10.0.0.0/8"})
    assert outbound.proxy_for("https://10.2.3.4/c.json") is None
    assert outbound.proxy_for("https://11.2.3.4/c.json") == "http://all:1"
    assert Outbound.from_environ({"ALL_PROXY": "http://all:1", "NO_PROXY": "*"}).proxy_for("https://a/b") is None
    assert Outbound.from_environ({}).proxy_for("https://a/b") is None


# DNS rebinding: the request goes to the vetted address; Host and TLS (SNI, certificate) name the host.
def test_a_pinned_request_targets_the_address_and_keeps_the_host_name() -> None:
    pinned = pinned_url("https://agent.example:8443/c.json?x=1", "203.0.113.5")
    assert pinned.url == "https://203.0.113.5:8443/c.json?x=1"
    assert pinned.headers == {"Host": "agent.example:8443"}
    assert pinned.extensions == {"sni_hostname": "agent.example"}
    v6 = pinned_url("https://agent.example/c.json", "2001:db8::5")
    assert v6.url == "https://[2001:db8::5]/c.json"
    assert pinned_url("https://203.0.113.5/c.json", "203.0.113.5").extensions == {}
